import { execFileSync, spawnSync } from 'node:child_process'
import { createServer as createHttpServer, request as httpRequest } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import express from 'express'
import t from 'tap'
import { fakeManager } from '@sdnotify/systemd-harness'
import { attach, close, listen } from '../src/index.js'

const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
const distCjs = fileURLToPath(new URL('../dist/cjs/index.js', import.meta.url))
const pkg = fileURLToPath(new URL('..', import.meta.url))
const texts = (messages: { text: string }[]) => messages.map((m) => m.text)
const portOf = (server: { address(): unknown }) => (server.address() as { port: number }).port
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A GET that keeps its connection alive (like browsers and fetch). */
function get(port: number, path: string): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ port, host: '127.0.0.1', path, headers: { connection: 'keep-alive' } }, (res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode as number, body, connection: res.headers.connection }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('listen(app, port, host, callback): READY=1 with the address, returns the http.Server', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  process.env.NOTIFY_SOCKET = fake.address // the positional form reads the environment, like real use
  t.teardown(() => delete process.env.NOTIFY_SOCKET)
  const app = express()
  app.get('/', (_req, res) => res.send('hi'))
  let called: unknown[] | undefined
  const server = await new Promise<ReturnType<typeof listen>>((resolve) => {
    const s = listen(app, 0, '127.0.0.1', (...args: unknown[]) => {
      called = args
      resolve(s)
    })
  })
  t.same(called, [], 'the callback gets no error')
  t.equal(typeof server.close, 'function')
  t.same(texts(await fake.waitFor(1)), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${portOf(server)}`])
  t.equal((await get(portOf(server), '/')).body, 'hi')
  await close(server)
  t.same(texts(await fake.waitFor(2))[1], 'STOPPING=1\nSTATUS=Shutting down')
})

t.test('options form, readyStatus, and validation naming the option', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const server = listen(express(), { port: 0, host: '127.0.0.1', readyStatus: (a) => `API up at ${a}`, notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  await new Promise((resolve) => server.once('listening', resolve))
  t.match(texts(await fake.waitFor(1))[0], /^READY=1\nSTATUS=API up at http:\/\/127\.0\.0\.1:\d+$/)
  await close(server)
  t.throws(() => listen(express(), { port: 70000 }), { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'port', message: /port must be an integer from 0 to 65535/ })
  t.throws(() => listen(express(), { prot: 1 } as never), { name: 'SdNotifyError', field: 'prot', message: /is unknown/ })
  t.throws(() => listen(express(), { handleSignals: { signals: ['SIGHUP'] } }), { name: 'SdNotifyError', field: 'handleSignals.signals' })
  t.throws(() => attach(createHttpServer(), { shutdownTimeoutMs: 0 }), { name: 'SdNotifyError', field: 'shutdownTimeoutMs' })
})

t.test('a listen error: ERRNO and STATUS reach systemd before the callback gets the error', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const blocker = createNetServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = portOf(blocker)
  const error = await new Promise<Error | undefined>((resolve) => listen(express(), { port, host: '127.0.0.1', notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } }, resolve))
  t.match(error, { code: 'EADDRINUSE' })
  t.same(texts(await fake.waitFor(1)), [`STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`])

  // An app that exits in its callback, in its own process: the report is already out.
  const fake2 = fakeManager()
  t.teardown(() => fake2.close())
  const script = `
    import express from 'express'
    import { listen } from ${JSON.stringify(dist)}
    listen(express(), ${port}, '127.0.0.1', (error) => { if (error) process.exit(1) })`
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NOTIFY_SOCKET: fake2.address }, encoding: 'utf8', cwd: pkg })
  t.equal(run.status, 1, run.stderr)
  t.match(texts(await fake2.waitFor(1))[0], /^STATUS=Failed to listen: .*EADDRINUSE.*\nERRNO=98$/)
})

t.test('close(): STOPPING, draining progress, the request in flight completes, keep-alive is ended', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const app = express()
  app.get('/slow', async (_req, res) => {
    await sleep(600)
    res.send('slow done')
  })
  app.get('/', (_req, res) => res.send('fast'))
  const server = listen(app, { port: 0, host: '127.0.0.1', notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  await new Promise((resolve) => server.once('listening', resolve))
  const port = portOf(server)
  await get(port, '/') // leaves an idle keep-alive connection open
  const slow = get(port, '/slow')
  await sleep(100)
  const started = Date.now()
  const closed = close(server)
  t.equal(close(server), closed, 'idempotent')
  const response = await slow
  t.same(response, { status: 200, body: 'slow done', connection: 'close' })
  await closed
  t.ok(Date.now() - started < 2000, 'close() did not wait for a keep-alive timeout')
  const messages = texts(await fake.waitFor(3))
  t.equal(messages[1], 'STOPPING=1\nSTATUS=Draining 1 connection')
  t.equal(messages[2], 'STOPPING=1\nSTATUS=Shutting down', 'progress reported as the drain ends')
  await t.rejects(get(port, '/'), 'no longer accepting')
})

t.test('close(): requests still running after shutdownTimeoutMs are cut off', async (t) => {
  const app = express()
  app.get('/hang', () => {})
  const server = listen(app, { port: 0, host: '127.0.0.1', shutdownTimeoutMs: 200, notifierOptions: { env: {} } })
  await new Promise((resolve) => server.once('listening', resolve))
  const hanging = get(portOf(server), '/hang').catch((error: Error) => error)
  await sleep(50)
  const started = Date.now()
  await close(server)
  t.ok(Date.now() - started >= 190, 'waited for the timeout')
  t.match(await hanging, { code: 'ECONNRESET' })
})

t.test('attach() works with a plain node:http server, already listening or not', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const server = createHttpServer((_req, res) => res.end('plain'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const attachment = attach(server, { notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  t.equal(attach(server), attachment, 'attaching twice returns the same attachment')
  t.match(texts(await fake.waitFor(1))[0], /^READY=1\nSTATUS=Listening on http:\/\/127\.0\.0\.1:\d+$/)
  t.equal((await get(portOf(server), '/')).body, 'plain')
  t.equal(attachment.connections, 1)
  await close(server)
  t.equal(server.listening, false)
})

t.test('no NOTIFY_SOCKET: serves normally and loads no native module', async (t) => {
  const script = `
    import express from 'express'
    import { listen, close } from ${JSON.stringify(dist)}
    const app = express(); app.get('/', (req, res) => res.send('ok'))
    const server = listen(app, 0, '127.0.0.1', async () => {
      const body = await (await fetch('http://127.0.0.1:' + server.address().port + '/')).text()
      await close(server)
      const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so))
      console.log(JSON.stringify({ body, native }))
    })`
  const env = { ...process.env }
  delete env.NOTIFY_SOCKET
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8', cwd: pkg }))
  t.same(out, { body: 'ok', native: [] })
})

t.test('CommonJS require()', async (t) => {
  const out = execFileSync(process.execPath, ['-e', `const m = require(${JSON.stringify(distCjs)}); console.log(typeof m.listen, typeof m.attach, typeof m.close)`], { encoding: 'utf8' })
  t.equal(out.trim(), 'function function function')
})
