import { execFileSync, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import t from 'tap'
import { createNotifier } from '@sdnotify/core'
import { fakeManager } from '@sdnotify/systemd-harness'
import sdNotify, { sdNotify as named, systemdListenOptions } from '../src/index.js'

const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
const distCjs = fileURLToPath(new URL('../dist/cjs/index.js', import.meta.url))
const texts = (messages: { text: string }[]) => messages.map((m) => m.text)

t.test('READY=1 with the address once listening; STOPPING=1 when close begins', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  t.equal(typeof app.sdNotify.status, 'function', 'fastify.sdNotify is the notifier')
  await app.ready()
  t.same(fake.messages, [], 'nothing before listen')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  t.same(texts(await fake.waitFor(1)), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${port}`])
  await app.sdNotify.status('3 requests in flight')
  await app.close()
  t.same(texts(await fake.waitFor(3)).slice(1), ['STATUS=3 requests in flight', 'STOPPING=1\nSTATUS=Shutting down'])
})

t.test('named export and readyOn: ready (no listen)', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  t.equal(named, sdNotify)
  const app = Fastify()
  await app.register(named, { readyOn: 'ready', readyStatus: () => 'Worker ready', notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  await app.ready()
  t.same(texts(await fake.waitFor(1)), ['READY=1\nSTATUS=Worker ready'])
  await app.close()
})

t.test('options are validated at registration, naming the option', async (t) => {
  const cases: [object, RegExp][] = [
    [{ readyOn: 'soon' }, /readyOn must be 'listen' or 'ready'/],
    [{ redyOn: 'listen' }, /redyOn is unknown/],
    [{ onReload: 'yes' }, /onReload must be a function/],
    [{ handleSignals: { signals: ['SIGHUP'] } }, /handleSignals.signals must not include SIGHUP/],
    [{ handleSignals: { timeoutMs: -1 } }, /handleSignals.timeoutMs/],
    [{ watchdog: 5 }, /watchdog must be a boolean or an object/],
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => app.register(sdNotify, options as never).ready(), { code: 'ERR_SDNOTIFY_INVALID_OPTION', message })
  }
})

t.test('the watchdog starts after READY and gets the fastify instance in healthCheck', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const app = Fastify()
  let seen: unknown
  await app.register(sdNotify, {
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } },
    watchdog: { healthCheck: (instance) => (seen = instance) },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await fake.waitFor(3)
  t.match(fake.messages[0]?.text, /^READY=1/)
  t.equal(fake.messages[1]?.text, 'WATCHDOG=1')
  t.equal(seen, app)
  t.equal(app.sdNotify.watchdog.running, true)
  await app.close()
  t.equal(app.sdNotify.watchdog.running, false, 'stopped on close')
})

t.test('SIGHUP reload: RELOADING=1, the handler, READY=1; a failing handler reports and keeps serving', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const listenersBefore = process.listenerCount('SIGHUP') // tap's own signal-exit listens too
  const app = Fastify()
  let reloads = 0
  let fail = false
  await app.register(sdNotify, {
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address } },
    onReload: async () => {
      reloads++
      if (fail) throw Object.assign(new Error('config.json: unexpected token'), { code: 'EINVAL' })
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await fake.waitFor(1)
  process.kill(process.pid, 'SIGHUP')
  const messages = texts(await fake.waitFor(3))
  t.match(messages[1], /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=Reloading$/)
  t.match(messages[2], /^READY=1\nSTATUS=Listening on http:\/\/127\.0\.0\.1:\d+$/, 'the previous status is restored')
  fail = true
  process.kill(process.pid, 'SIGHUP')
  const after = texts(await fake.waitFor(5))
  t.equal(after[4], 'READY=1\nSTATUS=Reload failed: config.json: unexpected token\nERRNO=22')
  t.equal(reloads, 2)
  t.equal((await app.inject('/')).statusCode, 404, 'still serving')
  await app.close()
  t.equal(process.listenerCount('SIGHUP'), listenersBefore, 'the SIGHUP handler is removed on close')
})

t.test('a failed listen is reported (ERRNO, STATUS) even when the app exits at once', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const script = `
    import Fastify from 'fastify'
    import sdNotify from ${JSON.stringify(dist)}
    const app = Fastify()
    await app.register(sdNotify)
    try { await app.listen({ port: ${port}, host: '127.0.0.1' }) } catch (error) { process.exit(1) }`
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NOTIFY_SOCKET: fake.address }, encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) })
  t.equal(run.status, 1, run.stderr)
  t.same(texts(await fake.waitFor(1)), [`STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`])
})

t.test('inject() without NOTIFY_SOCKET works and loads no native module', async (t) => {
  const script = `
    import Fastify from 'fastify'
    import sdNotify from ${JSON.stringify(dist)}
    const app = Fastify()
    await app.register(sdNotify)
    app.get('/', async () => 'ok')
    const res = await app.inject('/')
    await app.close()
    const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so))
    console.log(JSON.stringify({ body: res.body, native }))`
  const env = { ...process.env }
  delete env.NOTIFY_SOCKET
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) }))
  t.same(out, { body: 'ok', native: [] })
})

t.test('CommonJS: require() gives the plugin as default and named export', async (t) => {
  const out = execFileSync(process.execPath, ['-e', `const m = require(${JSON.stringify(distCjs)}); console.log(typeof m.default, m.default === m.sdNotify, typeof m.systemdListenOptions)`], { encoding: 'utf8' })
  t.equal(out.trim(), 'function true function')
})

t.test('systemdListenOptions: the passed socket, or the fallback', async (t) => {
  t.same(systemdListenOptions({ port: 8080 }), { port: 8080 })
  const notifier = createNotifier({ env: {} })
  t.equal(notifier.enabled, false)
})

t.test('a response sent while closing ends its keep-alive connection, so close() finishes', async (t) => {
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: {} } })
  let release: () => void = () => {}
  app.get('/slow', () => new Promise((resolve) => (release = () => resolve('done'))))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const response = fetch(`http://127.0.0.1:${port}/slow`)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const closed = app.close()
  await new Promise((resolve) => setTimeout(resolve, 50))
  release()
  const res = await response
  t.equal(res.headers.get('connection'), 'close')
  t.equal(await res.text(), 'done')
  const started = Date.now()
  await closed
  t.ok(Date.now() - started < 2000, 'close() did not wait for keepAliveTimeout')
})
