import { execFileSync, spawnSync } from 'node:child_process'
import http2 from 'node:http2'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import t from 'tap'
import { createNotifier } from '@sdnotify/core'
import { type FakeManager, fakeManager } from '@sdnotify/core/testing'
import sdNotify, { sdNotify as named, systemdListenOptions } from '../src/index.js'

const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
const distCjs = fileURLToPath(new URL('../dist/cjs/index.js', import.meta.url))
const texts = (messages: readonly { text: string }[]) => messages.map((m) => m.text)
/** Every datagram received, once there are at least `count`. */
async function received (fake: FakeManager, count: number) {
  await fake.waitFor(() => fake.datagrams.length >= count)
  return fake.datagrams
}

t.test('READY=1 with the address once listening; STOPPING=1 when close begins', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  t.equal(typeof app.sdNotify.status, 'function', 'fastify.sdNotify is the notifier')
  await app.ready()
  t.same(fake.datagrams, [], 'nothing before listen')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  t.same(texts(await received(fake, 1)), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${port}`])
  await app.sdNotify.status('3 requests in flight')
  await app.close()
  t.same(texts(await received(fake, 3)).slice(1), ['STATUS=3 requests in flight', 'STOPPING=1\nSTATUS=Shutting down'])
})

t.test('named export and readyOn: ready (no listen)', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  t.equal(named, sdNotify)
  const app = Fastify()
  await app.register(named,
    { readyOn: 'ready', readyStatus: () => 'Worker ready', notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  await app.ready()
  t.same(texts(await received(fake, 1)), ['READY=1\nSTATUS=Worker ready'])
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
    await t.rejects(async () => app.register(sdNotify, options as never).ready(),
      { code: 'ERR_SDNOTIFY_INVALID_OPTION', message })
  }
})

t.test('the watchdog starts after READY and gets the fastify instance in healthCheck', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const app = Fastify()
  let seen: unknown
  await app.register(sdNotify, {
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } },
    watchdog: { healthCheck: (instance) => (seen = instance) },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await received(fake, 3)
  t.match(fake.datagrams[0]?.text, /^READY=1/)
  t.equal(fake.datagrams[1]?.text, 'WATCHDOG=1')
  t.equal(seen, app)
  t.equal(app.sdNotify.watchdog.running, true)
  await app.close()
  t.equal(app.sdNotify.watchdog.running, false, 'stopped on close')
})

t.test('SIGHUP reload: RELOADING=1, the handler, READY=1; a failing handler reports and keeps serving', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const listenersBefore = process.listenerCount('SIGHUP') // tap's own signal-exit listens too
  const app = Fastify()
  let reloads = 0
  let fail = false
  await app.register(sdNotify, {
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address } },
    // eslint-disable-next-line @typescript-eslint/require-await -- async: the throw must be a rejection
    onReload: async () => {
      reloads++
      if (fail) throw Object.assign(new Error('config.json: unexpected token'), { code: 'EINVAL' })
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await received(fake, 1)
  process.kill(process.pid, 'SIGHUP')
  const messages = texts(await received(fake, 3))
  t.match(messages[1], /^RELOADING=1\nMONOTONIC_USEC=\d+$/)
  t.match(messages[2], /^READY=1\nSTATUS=Listening on http:\/\/127\.0\.0\.1:\d+$/, 'the previous status is restored')
  fail = true
  process.kill(process.pid, 'SIGHUP')
  const after = texts(await received(fake, 5))
  t.equal(after[4], 'READY=1\nSTATUS=Reload failed: config.json: unexpected token\nERRNO=22')
  t.equal(reloads, 2)
  t.equal((await app.inject('/')).statusCode, 404, 'still serving')
  await app.close()
  t.equal(process.listenerCount('SIGHUP'), listenersBefore, 'the SIGHUP handler is removed on close')
})

t.test('a failed listen is reported (ERRNO, STATUS) even when the app exits at once', async (t) => {
  const fake = await fakeManager()
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
    try {
      await app.listen({ port: ${port}, host: '127.0.0.1' })
    } catch (error) {
      console.log(error.code)
      process.exit(1)
    }`
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NOTIFY_SOCKET: fake.address },
    encoding: 'utf8',
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  })
  t.equal(run.status, 1, run.stderr)
  t.equal(run.stdout.trim(), 'EADDRINUSE', 'the error reaches the app as Fastify delivers it')
  const expected = [`STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`]
  t.same(texts(await received(fake, 1)), expected)
  await new Promise((resolve) => setTimeout(resolve, 100)) // let the fake manager read anything sent later
  t.same(texts(fake.datagrams), expected, 'sent once')
})

t.test('inject() without NOTIFY_SOCKET works and loads no native module', (t) => {
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
  const cwd = fileURLToPath(new URL('..', import.meta.url))
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8', cwd })
  const out = JSON.parse(stdout) as unknown
  t.same(out, { body: 'ok', native: [] })
  t.end()
})

t.test('CommonJS: require() gives the plugin as default and named export', (t) => {
  const script = `const m = require(${JSON.stringify(distCjs)})
console.log(typeof m.default, m.default === m.sdNotify, typeof m.systemdListenOptions)`
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  t.equal(out.trim(), 'function true function')
  t.end()
})

t.test('systemdListenOptions: the passed socket, or the fallback', (t) => {
  t.same(systemdListenOptions({ port: 8080 }), { port: 8080 })
  const notifier = createNotifier({ env: {} })
  t.equal(notifier.enabled, false)
  t.end()
})

t.test('a response sent while closing ends its keep-alive connection, so close() finishes', async (t) => {
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: {} } })
  let release: () => void = () => {}
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => (started = resolve))
  app.get('/slow', () => {
    started()
    return new Promise((resolve) => (release = () => resolve('done')))
  })
  let closing: () => void = () => {}
  const closeBegan = new Promise<void>((resolve) => (closing = resolve))
  app.addHook('preClose', () => Promise.resolve(closing())) // runs after the plugin's own preClose
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const response = fetch(`http://127.0.0.1:${port}/slow`)
  await running
  const closed = app.close()
  await closeBegan
  release()
  const res = await response
  t.equal(res.headers.get('connection'), 'close')
  t.equal(await res.text(), 'done')
  // The client keeps idle connections open: without `Connection: close` the server would wait for
  // keepAliveTimeout (72 s in Fastify) before close() resolves.
  let gaveUp = false
  const giveUp = setTimeout(() => (gaveUp = true), 10_000)
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000).unref())])
  clearTimeout(giveUp)
  t.equal(gaveUp, false, 'close() did not wait for keepAliveTimeout')
  await closed
})

t.test('Fastify register options (logLevel, prefix, logSerializers) are accepted and left to Fastify', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const app = Fastify()
  const env = { NOTIFY_SOCKET: fake.address }
  await app.register(sdNotify, { logLevel: 'warn', prefix: '/api', logSerializers: {}, notifierOptions: { env } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.match(texts(await received(fake, 1))[0], /^READY=1\n/)
  await app.close()
})

t.test('onReload installs a SIGHUP handler only under systemd ($NOTIFY_SOCKET set)', async (t) => {
  const before = process.listenerCount('SIGHUP')
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: {} }, onReload: () => undefined })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(process.listenerCount('SIGHUP'), before, 'no SIGHUP handler: outside systemd SIGHUP keeps its usual meaning')
  await app.close()
})

t.test('a readyStatus callback that throws: READY=1 with the default status, the error logged', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const logs: { level: number; msg: string; err?: { message: string } }[] = []
  const write = (line: string) => logs.push(JSON.parse(line) as (typeof logs)[number])
  const app = Fastify({ logger: { level: 'warn', stream: { write } } })
  await app.register(sdNotify, {
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address } },
    readyStatus: () => {
      throw new Error('status template broken')
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  t.same(texts(await received(fake, 1)), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${port}`])
  t.ok(logs.some((l) => l.err?.message === 'status template broken'), 'the error is logged')
  await app.close()
})

t.test('readyStatus gets ReadyInfo; a string is used as is; text is made a single line', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const env = { NOTIFY_SOCKET: fake.address }
  const one = Fastify()
  await one.register(sdNotify, { notifierOptions: { env }, readyStatus: ({ addresses }) => `up\n${addresses.length}` })
  await one.listen({ port: 0, host: '127.0.0.1' })
  t.same(texts(await received(fake, 1)), ['READY=1\nSTATUS=up 1'])
  await one.close()
  const two = Fastify()
  const stoppingStatus = ({ signal }: { signal: string | undefined }) => `bye ${signal}`
  await two.register(sdNotify, { notifierOptions: { env }, readyStatus: 'Serving', stoppingStatus })
  await two.listen({ port: 0, host: '127.0.0.1' })
  await two.close()
  t.same(texts(await received(fake, 4)).slice(2), ['READY=1\nSTATUS=Serving', 'STOPPING=1\nSTATUS=bye undefined'])
})

t.test('a reload failing with a multi-line message: READY=1, ERRNO and a single-line status', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const app = Fastify({ logger: false })
  await app.register(sdNotify, {
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address } },
    onReload: () => Promise.reject(new Error('bad config\n  at line 3')),
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await received(fake, 1)
  process.kill(process.pid, 'SIGHUP')
  const messages = texts(await received(fake, 3))
  t.match(messages[1], /^RELOADING=1\n/)
  t.match(messages[2], /^READY=1\nSTATUS=Reload failed: bad config at line 3\nERRNO=\d+$/)
  await app.close()
})

t.test('after listening, a server error is not swallowed by the plugin', async (t) => {
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: {} } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(app.server.listenerCount('error'), 0, 'no error listener of ours is left')
  const error = Object.assign(new Error('accept failed'), { code: 'EMFILE' })
  const emit = () => app.server.emit('error', error)
  t.throws(emit, { code: 'EMFILE' }, 'it reaches the application as without the plugin')
  await app.close()
})

t.test('HTTP/2: responses sent while closing carry no connection header (no UnsupportedWarning)', async (t) => {
  const warnings: string[] = []
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
  process.on('warning', onWarning)
  t.teardown(() => process.removeListener('warning', onWarning))
  const app = Fastify({ http2: true })
  await app.register(sdNotify, { notifierOptions: { env: {} } })
  let release: () => void = () => {}
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => (started = resolve))
  app.get('/slow', () => {
    started()
    return new Promise((resolve) => (release = () => resolve('done')))
  })
  let closing: () => void = () => {}
  const closeBegan = new Promise<void>((resolve) => (closing = resolve))
  app.addHook('preClose', () => Promise.resolve(closing())) // runs after the plugin's own preClose
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const client = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(() => client.close())
  const request = client.request({ ':path': '/slow' })
  request.setEncoding('utf8')
  const response = new Promise<{ headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    let body = ''
    let headers: http2.IncomingHttpHeaders = {}
    request.on('response', (h) => (headers = h))
    request.on('data', (chunk: string) => (body += chunk))
    request.on('end', () => resolve({ headers, body }))
    request.on('error', reject)
  })
  await running
  const closed = app.close()
  await closeBegan
  release()
  const { headers, body } = await response
  t.equal(headers[':status'], 200)
  t.equal(body, 'done')
  t.equal(headers.connection, undefined)
  client.close()
  await closed
  t.same(warnings.filter((w) => w.startsWith('UnsupportedWarning')), [])
})

t.test('HTTP/2: close() ends client sessions with a GOAWAY: it does not wait for the client to leave', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(sdNotify, { notifierOptions: { env: {} } })
  app.get('/', () => Promise.resolve('hello'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const client = http2.connect(`http://127.0.0.1:${port}`)
  const goaway = new Promise<boolean>((resolve) => client.once('goaway', () => resolve(true)))
  const request = client.request({ ':path': '/' })
  request.resume()
  await new Promise((resolve) => request.on('end', resolve))
  // The client keeps its session open. Without a GOAWAY the server would wait for it (http2SessionTimeout, 72 s).
  let gaveUp = false
  const giveUp = setTimeout(() => {
    gaveUp = true
    client.close()
  }, 10_000)
  await app.close()
  clearTimeout(giveUp)
  t.equal(gaveUp, false, 'closed while the client still held its session')
  t.equal(await goaway, true, 'the client got a GOAWAY')
  client.close()
})

t.test('shutdownTimeoutMs: a request still running then has its connection closed, and close() ends', async (t) => {
  const app = Fastify()
  await app.register(sdNotify, { notifierOptions: { env: {} }, shutdownTimeoutMs: 200 })
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => (started = resolve))
  app.get('/hang', () => {
    started()
    return new Promise(() => {})
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const response = fetch(`http://127.0.0.1:${port}/hang`).then(
    () => 'answered',
    (error: { cause?: { code?: string } }) => error.cause?.code ?? 'failed'
  )
  await running
  await app.close()
  t.not(await response, 'answered', 'the hung request was cut off after shutdownTimeoutMs')
})
