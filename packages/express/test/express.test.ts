import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer, request as httpRequest } from 'node:http'
import { connect as http2Connect, createSecureServer } from 'node:http2'
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import express from 'express'
import t from 'tap'
import { type FakeManager, fakeManager } from '@sdnotify/core/testing'
import { coverageEnv } from '@sdnotify/systemd-harness'
import { attach, close, listen } from '../src/index.js'

const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
const distCjs = fileURLToPath(new URL('../dist/cjs/index.js', import.meta.url))
const pkg = fileURLToPath(new URL('..', import.meta.url))
const texts = (messages: readonly { text: string }[]) => messages.map((m) => m.text)
/** Every datagram received, once there are at least `count`. */
async function received (fake: FakeManager, count: number) {
  await fake.waitFor(() => fake.datagrams.length >= count)
  return fake.datagrams
}
const portOf = (server: { address(): unknown }) => (server.address() as { port: number }).port
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const scratch = mkdtempSync(join(tmpdir(), 'sdnotify-express-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-keyout',
    join(scratch, 'key.pem'),
    '-out',
    join(scratch, 'cert.pem'),
  ],
  { stdio: 'ignore' }
)
const tls = { key: readFileSync(join(scratch, 'key.pem')), cert: readFileSync(join(scratch, 'cert.pem')) }

/** A GET that keeps its connection alive (like browsers and fetch). */
function get (
  port: number,
  path: string,
  secure = false
): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const options = { port, host: '127.0.0.1', path, headers: { connection: 'keep-alive' }, rejectUnauthorized: false }
    const req = (secure ? httpsRequest : httpRequest)(options, (res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode as number, body, connection: res.headers.connection }))
    })
    req.on('error', reject)
    req.end()
  })
}

interface Run {
  code: number | null
  lines: string[]
  stderr: string
}

/**
 * A script in its own node process (without tap's NODE_OPTIONS hooks, which install signal handlers).
 * `onLine` sees each line it prints.
 */
function run (
  script: string,
  env: Record<string, string>,
  onLine?: (line: string, kill: (signal: NodeJS.Signals) => void) => void
): Promise<Run> {
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', script], {
    env: { ...process.env, ...coverageEnv(), ...env },
    cwd: pkg,
  })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) {
      lines.push(line)
      onLine?.(line, (signal) => child.kill(signal))
    }
  })
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, lines, stderr })))
}

async function busyPort (t: { teardown(fn: () => unknown): void }): Promise<number> {
  const blocker = createNetServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  return portOf(blocker)
}

t.test('listen(app, port, host, callback): READY=1 with the address, returns the http.Server', async (t) => {
  const fake = await fakeManager()
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
  t.same(texts(await received(fake, 1)), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${portOf(server)}`])
  t.equal((await get(portOf(server), '/')).body, 'hi')
  t.equal(
    server.listenerCount('error'),
    1,
    'only the listen-error report is left (prepended; it rethrows unhandled errors)'
  )
  await close(server)
  t.same(texts(await received(fake, 2))[1], 'STOPPING=1\nSTATUS=Shutting down')
})

t.test(
  'listen(app, "/path.sock"): a string that is not a number is a unix socket path, as with app.listen',
  async (t) => {
    const path = join(scratch, 'app.sock')
    const app = express()
    app.get('/', (_req, res) => res.send('over a unix socket'))
    const request = () =>
      new Promise<string>((resolve, reject) => {
        // agent: false: a kept-alive socket to the first (closed) server would be reused: EPIPE, now and then.
        httpRequest({ socketPath: path, path: '/', agent: false }, (res) => {
          let text = ''
          res.on('data', (chunk) => (text += chunk))
          res.on('end', () => resolve(text))
        })
          .on('error', reject)
          .end()
      })
    const server = await new Promise<ReturnType<typeof listen>>((resolve, reject) => {
      const s = listen(app, path, (error) => (error ? reject(error) : resolve(s)))
    })
    t.equal(server.address(), path)
    t.equal(await request(), 'over a unix socket')
    await close(server)

    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const options = listen(app, { path, notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
    await new Promise((resolve) => options.once('listening', resolve))
    t.same(
      texts(await received(fake, 1)),
      [`READY=1\nSTATUS=Listening on ${path}`],
      'the options form; StatusText names the path'
    )
    t.equal(await request(), 'over a unix socket')
    await close(options)

    const numeric = await new Promise<ReturnType<typeof listen>>((resolve) => {
      const s = listen(express(), '0', '127.0.0.1', () => resolve(s))
    })
    t.equal(typeof numeric.address(), 'object', "a numeric string is still a port ('0')")
    await close(numeric)
  }
)

t.test(
  'the shared options: readyStatus and stoppingStatus as strings or functions, validation naming the option',
  async (t) => {
    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const env = { NOTIFY_SOCKET: fake.address }
    const server = listen(express(), {
      port: 0,
      host: '127.0.0.1',
      readyStatus: (info) => `API up at ${info.addresses.join(' and ')}`,
      stoppingStatus: (info) => `Bye (${info.signal ?? 'close()'})`,
      notifierOptions: { env },
    })
    await new Promise((resolve) => server.once('listening', resolve))
    t.match(texts(await received(fake, 1))[0], /^READY=1\nSTATUS=API up at http:\/\/127\.0\.0\.1:\d+$/)
    await close(server)
    t.equal(texts(await received(fake, 2))[1], 'STOPPING=1\nSTATUS=Bye (close())')

    const plain = listen(express(), {
      port: 0,
      host: '127.0.0.1',
      readyStatus: 'line one\nline two',
      stoppingStatus: 'Going',
      notifierOptions: { env },
    })
    await new Promise((resolve) => plain.once('listening', resolve))
    t.equal(
      texts(await received(fake, 3))[2],
      'READY=1\nSTATUS=line one line two',
      'a multi-line status is sent as one line'
    )
    await close(plain)
    t.equal(texts(await received(fake, 4))[3], 'STOPPING=1\nSTATUS=Going')

    t.throws(() => listen(express(), { port: 70000 }), {
      code: 'ERR_SDNOTIFY_INVALID_OPTION',
      field: 'port',
      message: /port must be an integer from 0 to 65535/,
    })
    t.throws(() => listen(express(), { prot: 1 } as never), {
      name: 'SdNotifyError',
      field: 'prot',
      message: /^@sdnotify\/express: option prot is unknown/,
    })
    t.throws(() => listen(express(), { handleSignals: { signals: ['SIGHUP'] } }), {
      name: 'SdNotifyError',
      field: 'handleSignals.signals',
    })
    t.throws(() => listen(express(), { readyStatus: 3 } as never), {
      field: 'readyStatus',
      message: /must be a string or a function/,
    })
    t.throws(() => listen(express(), { onReload: true } as never), { name: 'SdNotifyError', field: 'onReload' })
    t.throws(() => listen(express(), { path: '/x', port: 1 }), { name: 'SdNotifyError', field: 'path' })
    t.throws(() => attach(createHttpServer(), { shutdownTimeoutMs: 0 }), {
      name: 'SdNotifyError',
      field: 'shutdownTimeoutMs',
    })
    t.throws(
      () => attach(createHttpServer(), { port: 1 } as never),
      { field: 'port', message: /is unknown/ },
      'attach() takes no listen options'
    )
  }
)

t.test('a readyStatus callback that throws: READY=1 with the default status, and a warning', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const warnings: Error[] = []
  const onWarning = (warning: Error) => warnings.push(warning)
  process.on('warning', onWarning)
  t.teardown(() => process.removeListener('warning', onWarning))
  const readyStatus = () => {
    throw new Error('no status for you')
  }
  const server = listen(express(), {
    port: 0,
    host: '127.0.0.1',
    readyStatus,
    notifierOptions: { env: { NOTIFY_SOCKET: fake.address } },
  })
  await new Promise((resolve) => server.once('listening', resolve))
  t.same(texts(await received(fake, 1)), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${portOf(server)}`])
  await sleep(10) // warnings are emitted on the next tick
  t.match(warnings, [{ code: 'SDNOTIFY_EXPRESS', message: /readyStatus failed .*: no status for you/ }])
  await close(server)
})

t.test(
  'a listen error with a callback: ERRNO and STATUS reach systemd once, before the callback gets the error',
  async (t) => {
    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const port = await busyPort(t)
    const error = await new Promise<Error | undefined>((resolve) =>
      listen(
        express(),
        { port, host: '127.0.0.1', notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } },
        resolve
      )
    )
    t.match(error, { code: 'EADDRINUSE' })
    t.same(texts(await received(fake, 1)), [
      `STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`,
    ])

    // An app that exits in its callback, in its own process: the report is already out.
    const fake2 = await fakeManager()
    t.teardown(() => fake2.close())
    const result = await run(
      `import express from 'express'
    import { listen } from ${JSON.stringify(dist)}
    listen(express(), ${port}, '127.0.0.1', (error) => { if (error) { console.log(error.code); process.exit(3) } })`,
      { NOTIFY_SOCKET: fake2.address }
    )
    t.same([result.code, result.lines], [3, ['EADDRINUSE']], result.stderr)
    t.same(texts(await received(fake2, 1)), [
      `STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`,
    ])
    await sleep(50)
    t.equal(fake2.datagrams.length, 1, 'ERRNO sent once')
  }
)

t.test(
  'a listen error without a callback: systemd is told once, then the process dies of it, as with app.listen()',
  async (t) => {
    const port = await busyPort(t)
    const script = (call: string) => `import express from 'express'
    import { listen } from ${JSON.stringify(dist)}
    ${call}
    setInterval(() => {}, 1000) // a process that would otherwise keep running`
    const plain = await run(script(`express().listen(${port}, '127.0.0.1')`), {})
    t.equal(plain.code, 1, 'app.listen() without a callback: the process dies')
    t.match(plain.stderr, /EADDRINUSE/)

    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const ours = await run(script(`listen(express(), ${port}, '127.0.0.1')`), { NOTIFY_SOCKET: fake.address })
    t.equal(ours.code, 1, 'listen() without a callback: the same')
    t.match(ours.stderr, /Error: listen EADDRINUSE: address already in use 127\.0\.0\.1:\d+/)
    await received(fake, 1)
    await sleep(50) // a second report would be in by now
    t.same(
      texts(fake.datagrams),
      [`STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`],
      'told first, once'
    )
  }
)

t.test('a server error after listening (EMFILE on accept) is not swallowed', async (t) => {
  const script = (extra: string) => `import express from 'express'
    import { listen } from ${JSON.stringify(dist)}
    const server = listen(express(), 0, '127.0.0.1', () => {
      ${extra}
      setImmediate(() => server.emit('error', Object.assign(new Error('accept failed'), { code: 'EMFILE' })))
      setTimeout(() => { console.log('still running'); process.exit(0) }, 300)
    })`
  const crashed = await run(script(''), {})
  t.equal(crashed.code, 1, 'no error listener of the app: the process dies, as without us')
  t.match(crashed.stderr, /Error: accept failed/)
  t.same(crashed.lines, [])
  const handled = await run(script('server.on(\'error\', (error) => console.log(\'app got \' + error.code))'), {})
  t.same([handled.code, handled.lines], [0, ['app got EMFILE', 'still running']], 'the app’s own listener gets it')
})

t.test('close(): STOPPING, draining progress, the request in flight completes, keep-alive is ended', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const app = express()
  app.get('/slow', async (_req, res) => {
    await sleep(600)
    res.send('slow done')
  })
  app.get('/', (_req, res) => res.send('fast'))
  const server = listen(app, { port: 0, host: '127.0.0.1', notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  server.keepAliveTimeout = 60_000 // a connection left open would hold close() past the test's timeout
  await new Promise((resolve) => server.once('listening', resolve))
  const port = portOf(server)
  await get(port, '/') // leaves an idle keep-alive connection open
  const slow = get(port, '/slow')
  await sleep(100)
  const closed = close(server)
  t.equal(close(server), closed, 'idempotent')
  const response = await slow
  t.same(response, { status: 200, body: 'slow done', connection: 'close' })
  await closed
  const messages = texts(await received(fake, 3))
  t.equal(messages[1], 'STOPPING=1\nSTATUS=Shutting down: draining 1 connection')
  t.equal(messages[2], 'STOPPING=1\nSTATUS=Shutting down', 'progress reported as the drain ends')
  await t.rejects(get(port, '/'), 'no longer accepting')
})

t.test('close() of an HTTPS server: the request in flight completes (not reset)', async (t) => {
  const server = createHttpsServer(tls, (_req, res) => setTimeout(() => res.end('slow done'), 700))
  server.keepAliveTimeout = 60_000
  attach(server, { notifierOptions: { env: {} } })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const slow = get(portOf(server), '/', true)
  await new Promise((resolve) => server.once('request', resolve))
  const closed = close(server)
  t.same(await slow, { status: 200, body: 'slow done', connection: 'close' })
  await closed
})

t.test('close() of an HTTP/2 server: the stream in flight completes (not reset)', async (t) => {
  const server = createSecureServer(tls, (_req, res) => setTimeout(() => res.end('slow done'), 700))
  attach(server, { notifierOptions: { env: {} } })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const session = http2Connect(`https://127.0.0.1:${portOf(server)}`, { rejectUnauthorized: false })
  t.teardown(() => session.destroy())
  const stream = session.request({ ':path': '/' })
  const response = new Promise<{ status: number; body: string; rstCode: number | undefined }>((resolve) => {
    let body = ''
    let status = 0
    stream.on('response', (headers) => (status = Number(headers[':status'])))
    stream.on('data', (chunk) => (body += chunk))
    stream.on('error', () => undefined)
    stream.on('close', () => resolve({ status, body, rstCode: stream.rstCode }))
  })
  await new Promise((resolve) => server.once('request', resolve))
  const closed = close(server)
  t.same(await response, { status: 200, body: 'slow done', rstCode: 0 })
  await closed
})

t.test('close(): requests still running after shutdownTimeoutMs are cut off', async (t) => {
  const app = express()
  app.get('/hang', () => {})
  const server = listen(app, { port: 0, host: '127.0.0.1', shutdownTimeoutMs: 200, notifierOptions: { env: {} } })
  await new Promise((resolve) => server.once('listening', resolve))
  const hanging = get(portOf(server), '/hang').catch((error: Error) => error)
  await sleep(50)
  await close(server)
  t.match(await hanging, { code: 'ECONNRESET' })
})

t.test('attach() works with a plain node:http server, already listening or not', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const server = createHttpServer((_req, res) => res.end('plain'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const attachment = attach(server, { notifierOptions: { env: { NOTIFY_SOCKET: fake.address } } })
  t.equal(attach(server), attachment, 'attaching twice returns the same attachment')
  t.match(texts(await received(fake, 1))[0], /^READY=1\nSTATUS=Listening on http:\/\/127\.0\.0\.1:\d+$/)
  t.equal((await get(portOf(server), '/')).body, 'plain')
  t.equal(attachment.connections, 1)
  await close(server)
  t.equal(server.listening, false)
})

t.test(
  'onReload: SIGHUP under systemd runs it between RELOADING=1 and READY=1; never installed elsewhere',
  async (t) => {
    const before = process.listenerCount('SIGHUP')
    const outside = listen(express(), {
      port: 0,
      host: '127.0.0.1',
      onReload: () => undefined,
      notifierOptions: { env: {} },
    })
    t.equal(process.listenerCount('SIGHUP'), before, 'not under systemd: SIGHUP keeps its usual meaning')
    await close(outside)

    const fake = await fakeManager()
    t.teardown(() => fake.close())
    let reloads = 0
    const server = listen(express(), {
      port: 0,
      host: '127.0.0.1',
      // eslint-disable-next-line @typescript-eslint/require-await -- async: the throw must be a rejection
      onReload: async () => {
        reloads++
        if (reloads === 2) throw new Error('bad config\n  at line 3')
      },
      notifierOptions: { env: { NOTIFY_SOCKET: fake.address } },
    })
    await new Promise((resolve) => server.once('listening', resolve))
    await received(fake, 1)
    t.equal(process.listenerCount('SIGHUP'), before + 1)
    const strip = (m: string) => m.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=…')
    const warnings: Error[] = []
    const onWarning = (warning: Error) => warnings.push(warning)
    process.on('warning', onWarning)
    t.teardown(() => process.removeListener('warning', onWarning))
    process.kill(process.pid, 'SIGHUP')
    const listening = `Listening on http://127.0.0.1:${portOf(server)}`
    t.same(
      texts(await received(fake, 3))
        .slice(1)
        .map(strip),
      ['RELOADING=1\nMONOTONIC_USEC=…', `READY=1\nSTATUS=${listening}`]
    )
    process.kill(process.pid, 'SIGHUP')
    t.same(
      texts(await received(fake, 5))
        .slice(3)
        .map(strip),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'READY=1\nSTATUS=Reload failed: bad config at line 3\nERRNO=5']
    )
    await sleep(10)
    t.match(warnings, [{ message: /reload failed: bad config at line 3/ }], 'the failure is logged')
    await close(server)
    t.equal(process.listenerCount('SIGHUP'), before, 'removed by close()')
  }
)

t.test('no NOTIFY_SOCKET: serves normally and loads no native module', (t) => {
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
  const out = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8', cwd: pkg })
  ) as unknown
  t.same(out, { body: 'ok', native: [] })
  t.end()
})

t.test('CommonJS require()', (t) => {
  const out = execFileSync(
    process.execPath,
    [
      '-e',
      `const m = require(${JSON.stringify(distCjs)}); console.log(typeof m.listen, typeof m.attach, typeof m.close)`,
    ],
    { encoding: 'utf8' }
  )
  t.equal(out.trim(), 'function function function')
  t.end()
})
