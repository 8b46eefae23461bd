// One contract for the three framework adapters (the way http-terminator runs one suite against several
// servers): the same scenarios run against each adapter's fixture script, as a real service under a private
// systemd manager (252; reload on the 257 Debian root) where readiness and stopping are concerned, and as a
// child process beside the fake manager for the rest. An adapter's test/contract.test.ts is:
//
//   import t from 'tap'
//   import { adapterContract } from '@sdnotify/systemd-harness'
//   adapterContract('express', fileURLToPath(new URL('../fixtures/contract-app.mjs', import.meta.url)), { t })
//
// It starts systemd managers: run it under the shared lock (flock /tmp/sdnotify-systemd.lock npx tap …).
//
// The fixture (packages/<adapter>/fixtures/contract-app.mjs) imports the BUILT adapter and reads only these
// variables:
// - CONTRACT_PROTOCOL: http (default) | https | h2 (HTTP/2 over TLS) | h2c (cleartext HTTP/2). TLS key and
//   certificate: the files in CONTRACT_TLS_KEY and CONTRACT_TLS_CERT. A protocol the framework cannot serve:
//   print {"event":"unsupported","reason":"…"} and exit 78; the suite then skips those scenarios, printing why.
// - CONTRACT_LISTEN: a port number | an absolute unix socket path | `activated` (the socket systemd passed).
//   CONTRACT_HOST: default 127.0.0.1.
// - CONTRACT_READY_STATUS: unset (the default status) | `throw` (a readyStatus callback that throws
//   new Error('readyStatus failed on purpose')) | `async-throw` (an async callback throwing that error) |
//   `async` (an async callback resolving 'from a promise') | `multiline` (returns 'line one\nline two') | any
//   other text.
// - CONTRACT_STOPPING_STATUS: unset | `async-throw` (an async stoppingStatus throwing
//   new Error('stoppingStatus failed on purpose')).
// - CONTRACT_HEALTH: unset | `fail-multiline`: watchdog { pingIntervalMs: 250, healthCheck } where healthCheck
//   rejects with new Error('db down\n    at Pool.connect (pool.js:1:1)') (the unit sets WatchdogSec=).
// - CONTRACT_ERROR_LISTENER: `1` → once listening, the app adds its own 'error' listener to the HTTP server,
//   printing {"event":"server-error","code":…}.
// - CONTRACT_RELOAD: unset (no onReload) | `ok` (prints {"event":"reloaded"}) | `fail` (rejects with
//   new Error('bad config\n  at line 3')).
// - CONTRACT_SIGNALS: `1` → handleSignals: true; otherwise the fixture closes the app itself on SIGTERM and
//   SIGINT, prints {"event":"closed"} and exits 0.
// - CONTRACT_SHUTDOWN_TIMEOUT_MS: shutdownTimeoutMs.
// Routes: GET /fast → 200 'ok'; GET /slow?ms=N → 200 'slow done' after N ms (printing {"event":"request",
// "path":"/slow"} when it starts, which the stop scenarios wait for); GET /server-error → 200, then the HTTP
// server emits Object.assign(new Error('accept failed'), { code: 'EMFILE' }) from outside the request's call
// stack (setImmediate: a framework catches what a handler throws). The fixture installs no 'error' listener
// unless CONTRACT_ERROR_LISTENER=1.
// Events on stdout, one JSON line each: {"event":"listening","address":…}; {"event":"error","code":…} for a
// listen error the app received from the framework, which it then rethrows (exits non-zero), as a normal
// app would; {"event":"closed"} after its own close resolved.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { type ClientHttp2Stream, connect as http2Connect } from 'node:http2'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { fakeManager } from './fake-manager.js'
import {
  coverageEnv,
  DEBIAN_ROOT,
  debianRootSkipReason,
  type Manager,
  startManager,
  systemdSkipReason,
} from './manager.js'
import { canConnect, testPort } from './net.js'

/** The part of a tap test the suite uses (the harness does not depend on tap). */
export interface ContractTest {
  test(
    name: string,
    options: { skip?: string | boolean; timeout?: number },
    fn: (t: ContractTest) => Promise<void>,
  ): unknown
  equal(found: unknown, wanted: unknown, message: string): unknown
  not(found: unknown, notWanted: unknown, message: string): unknown
  same(found: unknown, wanted: unknown, message: string): unknown
  match(found: unknown, pattern: unknown, message: string): unknown
  ok(value: unknown, message: string): unknown
  comment(...message: unknown[]): unknown
  teardown(fn: () => unknown): unknown
}

export interface ContractOptions {
  t: ContractTest
}

export type ContractProtocol = 'http' | 'https' | 'h2' | 'h2c'

export interface FixtureEvent {
  event: string
  [key: string]: unknown
}

/** A self-signed EC certificate for localhost/127.0.0.1 in a fresh folder anyone may read (services run as nobody). */
export function selfSignedCertificate (): { dir: string; key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-tls-'))
  chmodSync(dir, 0o755)
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
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
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' }
  )
  chmodSync(key, 0o644)
  chmodSync(cert, 0o644)
  return { dir, key, cert }
}

/** The JSON event lines of a fixture's output; other lines (framework logs) are skipped. */
export function fixtureEvents (text: string): FixtureEvent[] {
  const events: FixtureEvent[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const value = JSON.parse(line) as FixtureEvent
      if (typeof value?.event === 'string') events.push(value)
    } catch {
      /* a log line that only looks like JSON */
    }
  }
  return events
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const read = (file: string) => {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

interface Child {
  process: ChildProcess
  stdout(): string
  stderr(): string
  events(): FixtureEvent[]
  /** The first `name` event, waiting up to `timeoutMs`; undefined if the fixture exited or time ran out. */
  waitFor(name: string, timeoutMs?: number): Promise<FixtureEvent | undefined>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** The fixture in a child process, without tap's NODE_OPTIONS hooks (they install signal handlers). */
function runFixture (fixture: string, env: Record<string, string>, nodeArgs: string[] = []): Child {
  const base = { ...process.env }
  for (const name of ['NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'WATCHDOG_USEC', 'WATCHDOG_PID']) {
    delete base[name]
  }
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ...nodeArgs, fixture], {
    env: { ...base, ...coverageEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  let done = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      done = true
      resolve({ code, signal })
    })
  )
  const events = () => fixtureEvents(stdout)
  return {
    process: child,
    stdout: () => stdout,
    stderr: () => stderr,
    events,
    async waitFor (name, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = events().find((e) => e.event === name)
        if (found || done || Date.now() > deadline) return found
        await sleep(20)
      }
    },
    exited,
  }
}

/** Why the fixture cannot serve `protocol` (it said so), or undefined when it can. */
async function unsupportedReason (
  fixture: string,
  protocol: ContractProtocol,
  tls: Record<string, string>
): Promise<string | undefined> {
  const child = runFixture(fixture, { CONTRACT_PROTOCOL: protocol, CONTRACT_LISTEN: '0', ...tls })
  const listening = child.waitFor('listening', 20_000)
  const outcome = await Promise.race([listening.then(() => 'listening'), child.exited.then(() => 'exited')])
  child.process.kill('SIGKILL')
  const { code } = await child.exited
  const unsupported = child.events().find((e) => e.event === 'unsupported')
  if (unsupported) {
    const reason = typeof unsupported.reason === 'string' ? unsupported.reason : JSON.stringify(unsupported.reason)
    return `the fixture cannot serve ${protocol}: ${reason}`
  }
  if (outcome !== 'listening') {
    throw new Error(`the ${protocol} fixture neither listened nor said unsupported (exit ${code}):\n${child.stderr()}`)
  }
  return undefined
}

interface Response {
  status: number
  body: string
}

type Target = { port: number } | { socketPath: string }

/** One GET with a fresh connection. */
function get (protocol: ContractProtocol, target: Target, path: string): Promise<Response> {
  if (protocol === 'h2' || protocol === 'h2c') {
    const session = http2Connect(
      `${protocol === 'h2' ? 'https' : 'http'}://127.0.0.1:${(target as { port: number }).port}`,
      { rejectUnauthorized: false }
    )
    session.on('error', () => undefined)
    return h2Get(session, path).finally(() => session.close())
  }
  return new Promise((resolve, reject) => {
    const options = { ...target, host: '127.0.0.1', path, agent: false as const, rejectUnauthorized: false }
    const req = (protocol === 'https' ? httpsRequest : httpRequest)(options, (res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode as number, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function h2Get (session: ReturnType<typeof http2Connect>, path: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    let stream: ClientHttp2Stream
    try {
      stream = session.request({ ':path': path })
    } catch (error) {
      reject(error) // the session is closing (GOAWAY received): refused before it was sent
      return
    }
    let status = 0
    let body = ''
    stream.on('response', (headers) => (status = Number(headers[':status'])))
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()))
    // Node 24 (unlike 20) no longer throws from request() once GOAWAY was received: the stream fails with
    // ERR_HTTP2_GOAWAY_SESSION (and rstCode 2, though nothing was sent). Keep the error to tell that refusal apart.
    let failure: NodeJS.ErrnoException | undefined
    stream.on('error', (error: NodeJS.ErrnoException) => (failure = error))
    stream.on('close', () => {
      if (stream.rstCode === 0 && status > 0) resolve({ status, body })
      else {
        const message = `stream closed with code ${stream.rstCode} before a full response`
        const code = failure?.code
        reject(Object.assign(new Error(failure ? `${message}: ${failure.message}` : message), {
          rstCode: stream.rstCode,
          code,
        }))
      }
    })
  })
}

/** A request that was not answered, for the keep-alive scenarios: a clean refusal or close, or a reset? */
function cleanFailure (error: unknown): boolean {
  const e = error as NodeJS.ErrnoException & { rstCode?: number }
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') return true // nothing listening any more
  // 'socket hang up': closed (FIN) before a response; 'read ECONNRESET' would be a reset.
  if (e.code === 'ECONNRESET') return e.message === 'socket hang up'
  if (e.code === 'ERR_HTTP2_GOAWAY_SESSION' || e.code === 'ERR_HTTP2_INVALID_SESSION') return true
  return e.rstCode === 7 // NGHTTP2_REFUSED_STREAM: not processed, safe to retry (RFC 9113 8.7)
}

/** A raw HTTP/1.1 connection for pipelining: what came back, and whether it ended with an error (a reset). */
function rawConnection (protocol: 'http' | 'https', port: number) {
  const socket: Socket =
    protocol === 'https'
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      : netConnect(port, '127.0.0.1')
  let raw = ''
  const errors: NodeJS.ErrnoException[] = []
  socket.on('data', (chunk: Buffer) => (raw += chunk.toString()))
  socket.on('error', (error) => errors.push(error))
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  return {
    send: (path: string) => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`),
    async result () {
      await closed
      return { ...parseResponses(raw), errors }
    },
    destroy: () => socket.destroy(),
  }
}

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * The complete HTTP/1.1 responses in `raw` (Content-Length or chunked bodies), and what is left after them
 * (a response cut short, or bytes that are no response at all).
 */
export function parseResponses (raw: string): { responses: RawResponse[]; rest: string } {
  const responses: RawResponse[] = []
  let at = 0
  for (;;) {
    const head = raw.indexOf('\r\n\r\n', at)
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(raw.slice(at, at + 13))
    if (head < 0 || !status) break
    const headers: Record<string, string> = {}
    for (const line of raw.slice(at, head).split('\r\n').slice(1)) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    let body = ''
    let end = head + 4
    if (headers['transfer-encoding'] === 'chunked') {
      let complete = false
      for (;;) {
        const sizeEnd = raw.indexOf('\r\n', end)
        if (sizeEnd < 0) break
        const size = Number.parseInt(raw.slice(end, sizeEnd), 16)
        if (Number.isNaN(size) || raw.length < sizeEnd + 2 + size + 2) break
        body += raw.slice(sizeEnd + 2, sizeEnd + 2 + size)
        end = sizeEnd + 2 + size + 2
        if (size === 0) {
          complete = true
          break
        }
      }
      if (!complete) break
    } else {
      // The bodies here are ASCII: characters and bytes count the same.
      const length = Number(headers['content-length'] ?? 0)
      if (raw.length < end + length) break
      body = raw.slice(end, end + length)
      end += length
    }
    responses.push({ status: Number(status[1]), headers, body })
    at = end
  }
  return { responses, rest: raw.slice(at) }
}

async function waitForEvents (file: string, name: string, count: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = fixtureEvents(read(file)).filter((e) => e.event === name).length
    if (found >= count || Date.now() > deadline) return found
    await sleep(50)
  }
}

export function adapterContract (name: string, fixture: string, { t }: ContractOptions): void {
  t.test(`${name}: the adapter contract`, {}, async (t) => {
    const certificate = selfSignedCertificate()
    t.teardown(() => rmSync(certificate.dir, { recursive: true, force: true }))
    const tls = { CONTRACT_TLS_KEY: certificate.key, CONTRACT_TLS_CERT: certificate.cert }
    const [https, h2, h2c] = await Promise.all(
      (['https', 'h2', 'h2c'] as const).map((p) => unsupportedReason(fixture, p, tls))
    )
    const unsupported: Record<ContractProtocol, string | undefined> = { http: undefined, https, h2, h2c }
    for (const [protocol, reason] of Object.entries(unsupported)) {
      if (reason) t.comment(`${name}: skipping ${protocol} scenarios: ${reason}`)
    }
    const scheme = (protocol: ContractProtocol) => (protocol === 'https' || protocol === 'h2' ? 'https' : 'http')

    // eslint-disable-next-line @typescript-eslint/require-await -- ContractTest.test() takes async callbacks only
    t.test('beside the fake manager', {}, async (t) => {
      t.test(
        'a server error after listening is not swallowed: without an app listener the process dies of it',
        {},
        async (t) => {
          const fake = fakeManager()
          t.teardown(() => fake.close())
          const port = testPort()
          const child = runFixture(fixture, { NOTIFY_SOCKET: fake.address, CONTRACT_LISTEN: String(port) })
          t.teardown(() => child.process.kill('SIGKILL'))
          t.ok(await child.waitFor('listening'), `listening ${child.stderr()}`)
          t.same(
            await get('http', { port }, '/server-error'),
            { status: 200, body: 'ok' },
            'the route answers, then emits the error'
          )
          const { code } = await child.exited
          t.not(code, 0, 'the process died, as it would without the adapter')
          t.match(child.stderr(), /accept failed/, 'of that error')
        }
      )

      t.test(
        "an app with its own 'error' listener: a later server error reaches it, and the process keeps serving",
        {},
        async (t) => {
          const fake = fakeManager()
          t.teardown(() => fake.close())
          const port = testPort()
          const child = runFixture(fixture, {
            NOTIFY_SOCKET: fake.address,
            CONTRACT_LISTEN: String(port),
            CONTRACT_ERROR_LISTENER: '1',
          })
          t.teardown(() => child.process.kill('SIGKILL'))
          t.ok(await child.waitFor('listening'), `listening ${child.stderr()}`)
          t.same(await get('http', { port }, '/server-error'), { status: 200, body: 'ok' }, 'the route answers')
          const seen = await child.waitFor('server-error', 5000)
          t.equal(seen?.code, 'EMFILE', `the app's listener got the error ${child.stderr()}`)
          t.same(
            await get('http', { port }, '/fast').catch((error: unknown) => String(error)),
            { status: 200, body: 'ok' },
            'and the process still serves'
          )
          t.equal(child.process.exitCode, null, 'it did not exit')
        }
      )

      for (const register of ['on', 'once'] as const) {
        t.test(
          `handleSignals with the host's own SIGTERM listener (process.${register}): close, the host decides the exit`,
          {},
          async (t) => {
            const fake = fakeManager()
            t.teardown(() => fake.close())
            const dir = mkdtempSync(join(tmpdir(), 'sdnotify-host-'))
            t.teardown(() => rmSync(dir, { recursive: true, force: true }))
            // Imported before the app: the host's listener is registered before the adapter's.
            const host = join(dir, 'host-sigterm.mjs')
            const line = (event: string) => `process.stdout.write(JSON.stringify({ event: '${event}' }) + '\\n')`
            writeFileSync(
              host,
              `process.${register}('SIGTERM', () => {\n  ${line('host-sigterm')}\n` +
                `  setTimeout(() => { ${line('host-exit')}; process.exit(42) }, 500)\n})\n`
            )
            const port = testPort()
            const child = runFixture(
              fixture,
              { NOTIFY_SOCKET: fake.address, CONTRACT_LISTEN: String(port), CONTRACT_SIGNALS: '1' },
              ['--import', host]
            )
            t.teardown(() => child.process.kill('SIGKILL'))
            t.ok(await child.waitFor('listening'), `listening ${child.stderr()}`)
            child.process.kill('SIGTERM')
            const { code } = await child.exited
            t.equal(code, 42, `the host's handler made the exit ${child.stderr()}`)
            t.same(
              child
                .events()
                .filter((e) => e.event.startsWith('host-'))
                .map((e) => e.event),
              ['host-sigterm', 'host-exit'],
              'the host handler ran, then made the exit'
            )
            t.ok(
              fake.messages.some((m) => /^STOPPING=1$/m.test(m.text)),
              'the adapter still closed: STOPPING=1 was sent'
            )
            t.equal(await canConnect(port), false, 'and it stopped listening')
          }
        )
      }
    })

    t.test('under systemd 252', { skip: systemdSkipReason() }, async (t) => {
      const sd = await startManager()
      t.teardown(() => sd.stop())
      const service = serviceMaker(sd, fixture, name, tls)

      for (const protocol of ['http', 'https', 'h2', 'h2c'] as const) {
        const title =
          `${protocol}: READY once listening; on stop a slow request completes ` +
          'and a keep-alive client gets an answer or a clean close'
        t.test(title, { skip: unsupported[protocol] ?? false }, async (t) => {
          const port = testPort()
          // handleSignals for http (the adapter's own exit); the app's own close for the others.
          const signals: Record<string, string> = protocol === 'http' ? { CONTRACT_SIGNALS: '1' } : {}
          const { unit, out, output } = await service(protocol, {
            CONTRACT_PROTOCOL: protocol,
            CONTRACT_LISTEN: String(port),
            ...signals,
          })
          const start = await sd.systemctl(['start', unit])
          t.equal(start.code, 0, why(`systemctl start ${start.stderr}`.trim(), start.code !== 0, output))
          t.equal(await canConnect(port), true, 'a connect right after systemctl start returns succeeds')
          const ready = `Listening on ${scheme(protocol)}://127.0.0.1:${port}`
          const props = await sd.show(unit)
          t.equal(props.ActiveState, 'active', 'the unit is active')
          t.equal(props.StatusText, ready, 'StatusText names the address')
          t.same(await get(protocol, { port }, '/fast'), { status: 200, body: 'ok' }, 'the server answers')
          await stopScenario(t, sd, { protocol, port, unit, out, ready, output })
          if (!signals.CONTRACT_SIGNALS) {
            t.equal(await waitForEvents(out, 'closed', 1, 2000), 1, 'the app’s own close resolved')
          }
        })
      }

      t.test('a unix socket path', {}, async (t) => {
        const path = `${sd.scratch}/contract-${name}.sock`
        const { unit, output } = await service('unix', { CONTRACT_LISTEN: path })
        const start = await sd.systemctl(['start', unit])
        t.equal(start.code, 0, why(`systemctl start ${start.stderr}`.trim(), start.code !== 0, output))
        t.equal((await sd.show(unit)).StatusText, `Listening on ${path}`, 'StatusText names the path')
        t.same(
          await get('http', { socketPath: path }, '/fast'),
          { status: 200, body: 'ok' },
          'served over the unix socket'
        )
        t.equal((await sd.systemctl(['stop', unit])).code, 0, 'systemctl stop')
        t.equal((await sd.show(unit)).Result, 'success', 'stopped cleanly')
      })

      t.test('socket activation from a .socket unit', {}, async (t) => {
        const port = testPort()
        const { unit, base, output } = await service('activated', { CONTRACT_LISTEN: 'activated' })
        sd.writeUnit(`${base}.socket`, ['[Socket]', `ListenStream=127.0.0.1:${port}`, ''].join('\n'))
        await sd.daemonReload()
        t.equal((await sd.systemctl(['start', `${base}.socket`])).code, 0, 'the socket unit starts')
        const served = await get('http', { port }, '/fast').catch((error: unknown) => String(error))
        t.same(
          served,
          { status: 200, body: 'ok' },
          why('served through the passed socket', typeof served === 'string', output)
        )
        const props = await sd.waitFor(unit, (p) => p.ActiveState === 'active', 5000)
        t.equal(
          props.StatusText,
          `Listening on http://127.0.0.1:${port}`,
          'StatusText names the passed socket, whatever CONTRACT_LISTEN says'
        )
        t.equal((await sd.systemctl(['stop', `${base}.socket`, unit])).code, 0, 'systemctl stop')
      })

      const listenErrors = [
        ['port busy', 'EADDRINUSE', '98'],
        ['permission denied on port 80 as nobody', 'EACCES', '13'],
      ] as const
      for (const [label, code, errno] of listenErrors) {
        t.test(
          `listen error (${label}): ERRNO and the cause reach systemd, then the app gets the error and dies of it`,
          {},
          async (t) => {
            let port = 80
            if (code === 'EADDRINUSE') {
              port = testPort()
              const holder = createNetServer()
              await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve))
              t.teardown(() => holder.close())
            }
            const { unit, out, output } = await service('listen-error', { CONTRACT_LISTEN: String(port) })
            t.not((await sd.systemctl(['start', unit])).code, 0, 'the start fails')
            const props = await sd.show(unit, ['Result', 'StatusErrno', 'StatusText', 'ExecMainStatus', 'ActiveState'])
            t.equal(props.StatusErrno, errno, why(`ERRNO=${errno} (${code})`, props.StatusErrno !== errno, output))
            t.match(props.StatusText, new RegExp(`^Failed to listen: .*${code}`), 'the cause, in StatusText')
            t.not(props.ExecMainStatus, '0', 'the process exited with a failure')
            t.ok(
              fixtureEvents(read(out)).some((e) => e.event === 'error' && e.code === code),
              'the app received the error'
            )
          }
        )
      }

      t.test('a readyStatus callback that throws: READY=1 with the default status, the error logged', {}, async (t) => {
        const port = testPort()
        const { unit, output } = await service('ready-throws', {
          CONTRACT_LISTEN: String(port),
          CONTRACT_READY_STATUS: 'throw',
        })
        const start = await sd.systemctl(['start', unit])
        t.equal(start.code, 0, why(`started (READY=1 came) ${start.stderr}`.trim(), start.code !== 0, output))
        t.equal((await sd.show(unit)).StatusText, `Listening on http://127.0.0.1:${port}`, 'the default status instead')
        t.match(output(), /readyStatus failed on purpose/, 'the error is logged')
        t.equal((await sd.systemctl(['stop', unit])).code, 0, 'systemctl stop')
      })

      t.test('a multi-line readyStatus: READY=1 with a single-line status', {}, async (t) => {
        const port = testPort()
        const { unit, output } = await service('ready-multiline', {
          CONTRACT_LISTEN: String(port),
          CONTRACT_READY_STATUS: 'multiline',
        })
        const start = await sd.systemctl(['start', unit])
        t.equal(start.code, 0, why(`started ${start.stderr}`.trim(), start.code !== 0, output))
        t.equal((await sd.show(unit)).StatusText, 'line one line two', 'one line')
        t.equal((await sd.systemctl(['stop', unit])).code, 0, 'systemctl stop')
      })

      // Status callbacks are synchronous: a promise is a misuse, reported once, and must never crash the host
      // (a rejection left unhandled ends a Node.js process) nor reach STATUS= as '[object Promise]'.
      for (const variant of ['async-throw', 'async'] as const) {
        const what = variant === 'async' ? 'resolves' : 'rejects'
        t.test(`an async readyStatus that ${what}: READY=1 with the default status, logged once`, {}, async (t) => {
          const port = testPort()
          const { unit, output } = await service(`ready-${variant}`, {
            CONTRACT_LISTEN: String(port),
            CONTRACT_READY_STATUS: variant,
          })
          const start = await sd.systemctl(['start', unit])
          t.equal(start.code, 0, why(`started (READY=1 came) ${start.stderr}`.trim(), start.code !== 0, output))
          const ready = `Listening on http://127.0.0.1:${port}`
          t.equal((await sd.show(unit)).StatusText, ready, 'the default status instead')
          t.same(
            await get('http', { port }, '/fast').catch((error: unknown) => String(error)),
            { status: 200, body: 'ok' },
            'still serving'
          )
          const reports = output()
            .split('\n')
            .filter((line) => /readyStatus/.test(line))
          t.equal(reports.length, 1, why('the problem is logged once', reports.length !== 1, output))
          t.match(reports[0] ?? '', /returned a promise/, 'saying what was wrong')
          t.equal((await sd.systemctl(['stop', unit])).code, 0, 'systemctl stop')
          const { Result } = await sd.show(unit)
          t.equal(Result, 'success', why('the process never crashed', Result !== 'success', output))
        })
      }

      t.test('an async stoppingStatus that rejects: STOPPING=1, the default status, a clean exit', {}, async (t) => {
        const port = testPort()
        const { unit, out, output } = await service('stopping-async-throw', {
          CONTRACT_LISTEN: String(port),
          CONTRACT_STOPPING_STATUS: 'async-throw',
        })
        const start = await sd.systemctl(['start', unit])
        t.equal(start.code, 0, why(`started ${start.stderr}`.trim(), start.code !== 0, output))
        const ready = `Listening on http://127.0.0.1:${port}`
        // A request in flight keeps the unit deactivating long enough to read the stopping status.
        const slow = get('http', { port }, '/slow?ms=1500').catch((error: unknown) => String(error))
        t.equal(await waitForEvents(out, 'request', 1, 5000), 1, 'the slow request reached the app')
        const stopping = sd.systemctl(['stop', unit])
        // Deactivating comes with SIGTERM, the status a moment later with STOPPING=1: wait for the status (or
        // for the end of the unit, had the process crashed).
        const ended = (state: string | undefined) => state !== 'active' && state !== 'deactivating'
        const during = await sd.waitFor(unit, (p) => p.StatusText !== ready || ended(p.ActiveState), 5000)
        t.match(during.StatusText, /^Shutting down/, 'the default stopping status')
        t.same(await slow, { status: 200, body: 'slow done' }, 'the request in flight completed')
        t.equal((await stopping).code, 0, 'systemctl stop')
        const { Result } = await sd.show(unit)
        t.equal(Result, 'success', why('exited cleanly: no unhandled rejection', Result !== 'success', output))
        const reports = output()
          .split('\n')
          .filter((line) => /stoppingStatus/.test(line) && /returned a promise/.test(line))
        t.equal(reports.length, 1, why('the problem is logged once', reports.length !== 1, output))
      })

      t.test('a health check failing with a multi-line error: the Unhealthy status reaches systemd', {}, async (t) => {
        const port = testPort()
        const { unit, output } = await service(
          'health-fail',
          { CONTRACT_LISTEN: String(port), CONTRACT_HEALTH: 'fail-multiline' },
          ['WatchdogSec=4s']
        )
        const start = await sd.systemctl(['start', unit])
        t.equal(start.code, 0, why(`started ${start.stderr}`.trim(), start.code !== 0, output))
        // pingIntervalMs 250: the first check fails a quarter second after READY=1, long before the 4 s timeout.
        const unhealthy = 'Unhealthy, watchdog paused: health check failed: db down at Pool.connect (pool.js:1:1)'
        const props = await sd.waitFor(unit, (p) => p.StatusText === unhealthy, 3000)
        t.equal(props.StatusText, unhealthy, why('one line, in StatusText', props.StatusText !== unhealthy, output))
        await sd.systemctl(['stop', unit])
      })
    })

    t.test('under systemd 257 (Type=notify-reload)', { skip: debianRootSkipReason() }, async (t) => {
      const repo = fixture.slice(0, fixture.indexOf('/packages/'))
      const sd = await startManager({ root: DEBIAN_ROOT, binds: [repo, certificate.dir] })
      t.teardown(() => sd.stop())
      const service = serviceMaker(sd, fixture, name, tls)
      for (const outcome of ['ok', 'fail'] as const) {
        const title =
          outcome === 'ok'
            ? 'reload: READY=1 after the handler, the status kept'
            : 'failing reload: READY=1 + ERRNO + a single-line status'
        t.test(title, {}, async (t) => {
          const port = testPort()
          const { unit, out, output } = await service(
            `reload-${outcome}`,
            { CONTRACT_LISTEN: String(port), CONTRACT_RELOAD: outcome },
            ['Type=notify-reload']
          )
          const start = await sd.systemctl(['start', unit])
          t.equal(start.code, 0, why(`started ${start.stderr}`.trim(), start.code !== 0, output))
          const reload = await sd.systemctl(['reload', unit], 30_000)
          t.equal(
            reload.code,
            0,
            why(`systemctl reload returned: READY=1 came ${reload.stderr}`.trim(), reload.code !== 0, output)
          )
          const props = await sd.show(unit)
          t.equal(props.ActiveState, 'active', 'still active')
          if (outcome === 'ok') {
            t.equal(props.StatusText, `Listening on http://127.0.0.1:${port}`, 'the status is kept')
            t.equal(await waitForEvents(out, 'reloaded', 1, 2000), 1, 'the handler ran (its event printed)')
          } else {
            t.equal(props.StatusText, 'Reload failed: bad config at line 3', 'the failure, in one line')
            t.not(props.StatusErrno, '0', 'ERRNO set')
            t.match(output(), /bad config/, 'the failure is logged')
          }
          t.equal((await sd.systemctl(['stop', unit])).code, 0, 'systemctl stop')
        })
      }
    })
  })
}

/** Writes Type=notify units running the fixture as nobody, stdout and stderr to files in the scratch folder. */
function serviceMaker (sd: Manager, fixture: string, adapter: string, tls: Record<string, string>) {
  let count = 0
  return async (label: string, env: Record<string, string>, lines: string[] = []) => {
    const base = `contract-${adapter}-${label}-${++count}`
    const out = `${sd.scratch}/${base}.out`
    const err = `${sd.scratch}/${base}.err`
    const environment = Object.entries({ ...tls, ...env })
      .map(([k, v]) => `"${k}=${v}"`)
      .join(' ')
    const type = lines.some((l) => l.startsWith('Type=')) ? [] : ['Type=notify']
    await sd.writeService(base, fixture, [], {
      unit: ['StartLimitIntervalSec=0'],
      service: [
        ...type,
        `Environment=${environment}`,
        'TimeoutStartSec=20s',
        'TimeoutStopSec=20s',
        `StandardOutput=append:${out}`,
        `StandardError=append:${err}`,
        ...lines,
      ],
    })
    return {
      unit: `${base}.service`,
      base,
      out,
      err,
      output: () => `\n--- stdout\n${read(out)}--- stderr\n${read(err)}`,
    }
  }
}

/**
 * `systemctl stop` with slow requests in flight: each completes with 200, a status other than the ready one is
 * shown while deactivating (STOPPING=1 with its STATUS=), and the unit stops cleanly. Keep-alive clients send
 * another request during the stop:
 * - HTTP/1.1 pipelining: GET /fast on the connection whose GET /slow is in flight (the server reads it mid-drain):
 *   both are answered, in order, and the connection is closed cleanly after the last;
 * - an HTTP/1.1 agent with one socket, busy with GET /slow: its next request is queued behind it;
 * - an idle HTTP/1.1 keep-alive connection (closed by the drain) and an HTTP/2 session with a slow stream;
 * each gets an answer (200 'ok', or 503 when the framework sheds load while closing: Fastify's
 * return503OnClosing) or a clean refusal or close, never a reset.
 */
async function stopScenario (
  t: ContractTest,
  sd: Manager,
  s: { protocol: ContractProtocol; port: number; unit: string; out: string; ready: string; output: () => string }
): Promise<void> {
  const { protocol, port, unit, out } = s
  const http2 = protocol === 'h2' || protocol === 'h2c'
  const http1 = http2 ? undefined : (protocol)
  const slowPath = '/slow?ms=1500'
  // Every request's outcome is taken as it settles: one that fails while another is awaited must not become an
  // unhandled rejection (which would end the test run, not fail a check).
  const inFlight: [string, Promise<Outcome>][] = [
    ['the slow request in flight', settle(get(protocol, { port }, slowPath))],
  ]
  const session = http2
    ? http2Connect(`${scheme(protocol)}://127.0.0.1:${port}`, { rejectUnauthorized: false })
    : undefined
  session?.on('error', () => undefined)
  t.teardown(() => session?.destroy())
  if (session) inFlight.push(['the slow stream of the keep-alive HTTP/2 session', settle(h2Get(session, slowPath))])
  const raw = http1 ? rawConnection(http1, port) : undefined
  t.teardown(() => raw?.destroy())
  raw?.send(slowPath)
  const busy = http1 ? keepAliveClient(http1, port) : undefined
  t.teardown(() => busy?.close())
  if (busy) inFlight.push(["the slow request on the busy agent's keep-alive connection", settle(busy.get(slowPath))])
  const idle = http1 ? keepAliveClient(http1, port) : undefined
  t.teardown(() => idle?.close())
  if (idle) t.same(await idle.get('/fast'), { status: 200, body: 'ok' }, 'an idle keep-alive connection is open')
  const slowRequests = inFlight.length + (raw ? 1 : 0)
  const seen = await waitForEvents(out, 'request', slowRequests, 5000)
  const reached = 'every slow request reached the app before the stop'
  t.equal(seen, slowRequests, why(reached, seen !== slowRequests, s.output))

  const stopping = sd.systemctl(['stop', unit])
  const during = await sd.waitFor(unit, (p) => p.ActiveState === 'deactivating' && p.StatusText !== s.ready, 5000)
  t.equal(during.ActiveState, 'deactivating', 'stopping')
  t.not(during.StatusText, s.ready, `a stopping status is shown (STOPPING=1): ${during.StatusText}`)

  const followUps: [string, Promise<Outcome>][] = []
  if (session) followUps.push(['a new stream on the HTTP/2 session', settle(h2Get(session, '/fast'))])
  if (busy) followUps.push(["a request queued on the busy agent's connection", settle(busy.get('/fast'))])
  if (idle) followUps.push(['a request on the idle keep-alive connection', settle(idle.get('/fast'))])
  raw?.send('/fast')
  for (const [label, request] of followUps) {
    const outcome = await request
    if (outcome.response) {
      const { status, body } = outcome.response
      t.ok(answered(outcome.response), `${label} during the stop was answered: ${status} ${body.slice(0, 40)}`)
    } else {
      const error = String(outcome.error)
      t.ok(cleanFailure(outcome.error), `${label} during the stop was cleanly refused, not reset: ${error}`)
    }
  }
  for (const [label, request] of inFlight) {
    const { response, error } = await request
    t.same(response ?? String(error), { status: 200, body: 'slow done' }, why(label, !response, s.output))
  }
  if (raw) {
    const { responses, rest, errors } = await raw.result()
    t.same(
      errors.map((e) => e.code),
      [],
      'the pipelining connection was not reset'
    )
    const [first, second] = responses
    t.same(
      first && { status: first.status, body: first.body },
      { status: 200, body: 'slow done' },
      'pipelining: its request in flight completed'
    )
    t.equal(responses.length, 2, 'pipelining: the request read during the stop was answered too')
    t.ok(
      second !== undefined && answered(second),
      `pipelining: with 200 'ok' (or 503): ${second ? `${second.status} ${second.body.slice(0, 40)}` : 'none'}`
    )
    t.equal(rest, '', 'pipelining: no response cut short')
    t.equal(second?.headers.connection, 'close', 'pipelining: the last response closes the connection')
  }
  const stopped = await stopping
  t.equal(stopped.code, 0, `systemctl stop ${stopped.stderr}`.trim())
  t.equal((await sd.show(unit)).Result, 'success', 'exited cleanly, not killed')
}

type Outcome = { response: Response; error?: undefined } | { response?: undefined; error: unknown }

function settle (request: Promise<Response>): Promise<Outcome> {
  return request.then(
    (response) => ({ response }),
    (error: unknown) => ({ error })
  )
}

/** A request during the stop that got an answer: 200 'ok', or 503 (a framework shedding load while closing). */
function answered (response: { status: number; body: string }): boolean {
  return (response.status === 200 && response.body === 'ok') || response.status === 503
}

/** `message`, with the service's output appended when the check `failed`. */
function why (message: string, failed: boolean, output: () => string): string {
  return failed ? `${message}${output()}` : message
}

function scheme (protocol: ContractProtocol): string {
  return protocol === 'https' || protocol === 'h2' ? 'https' : 'http'
}

/**
 * An HTTP/1.1 client with one keep-alive connection (an agent with maxSockets 1): a request made while the
 * connection is busy waits for it, and goes out on it when the server keeps it open.
 */
function keepAliveClient (protocol: 'http' | 'https', port: number) {
  const agent =
    protocol === 'https'
      ? new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false })
      : new HttpAgent({ keepAlive: true, maxSockets: 1 })
  const request = protocol === 'https' ? httpsRequest : httpRequest
  const get = (path: string) =>
    new Promise<Response>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        let body = ''
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode as number, body }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
  return { get, close: () => agent.destroy() }
}
