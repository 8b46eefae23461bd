import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { type FakeManager, fakeManager } from '@sdnotify/core/testing'
import { coverageEnv } from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const scenarios = fileURLToPath(new URL('./scenarios.mjs', import.meta.url))
const distCjs = fileURLToPath(new URL('../dist/cjs/index.js', import.meta.url))
const texts = (fake: FakeManager) => fake.datagrams.map((d) => d.text)
/** Every datagram received, once there are at least `count`. */
async function received (fake: FakeManager, count: number) {
  await fake.waitFor(() => fake.datagrams.length >= count)
  return fake.datagrams
}

/**
 * Runs a scenario of test/scenarios.mjs against the fake manager (none when fake is null). Asynchronously:
 * the fake manager must keep reading its socket meanwhile.
 */
/** The JSON line a scenario prints: each fills in the fields it reports. */
interface ScenarioResult {
  body: string
  port: number
  closed: boolean
  response: { error?: string }
  errors: unknown[]
  warnings: string[]
  unhealthy: string[]
  warned: boolean
}

async function scenario (
  name: string,
  fake: FakeManager | null,
  arg?: string,
  extra: Record<string, string> = {}
): Promise<ScenarioResult> {
  const env = { ...process.env, ...coverageEnv(), ...extra }
  delete env.NOTIFY_SOCKET
  if (fake) env.FAKE = fake.address
  else delete env.FAKE
  // Through env -u: tap re-adds its hooks (NODE_OPTIONS) to children, and they install signal handlers.
  const { stdout } = await promisify(execFile)('/usr/bin/env',
    ['-u', 'NODE_OPTIONS', process.execPath, scenarios, name, ...(arg ? [arg] : [])],
    { env, encoding: 'utf8', cwd: pkg })
  await new Promise((resolve) => setTimeout(resolve, 50)) // let the fake manager read the last datagrams
  return JSON.parse(stdout.trim().split('\n').pop() as string) as ScenarioResult
}

async function withFake (t: TapTest): Promise<FakeManager> {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  return fake
}
/** What these helpers need of tap's test object. */
type TapTest = { teardown(fn: () => unknown): void }

for (const platform of ['express', 'fastify']) {
  const name = `platform-${platform}: READY=1 only once app.listen() binds, with the address; STOPPING=1 on close`
  t.test(name, async (t) => {
    const fake = await withFake(t)
    const result = await scenario('http', fake, platform)
    t.equal(result.body, 'hello')
    await received(fake, 3)
    t.same(texts(fake), [
      'STATUS=initialised, not listening',
      `READY=1\nSTATUS=Listening on http://127.0.0.1:${result.port}`,
      'STOPPING=1\nSTATUS=Shutting down',
    ], 'every lifecycle hook ran before listen, and none sent READY')
  })
}

t.test('no HTTP server (application context): READY=1 in onApplicationBootstrap', async (t) => {
  const fake = await withFake(t)
  await scenario('context', fake)
  t.same(texts(fake).slice(0, 1), ['READY=1\nSTATUS=Worker ready'])
})

t.test('forRootAsync with useFactory and inject; SdNotifyService injectable anywhere (global)', async (t) => {
  const fake = await withFake(t)
  t.same(await scenario('async', fake), { injected: true, sent: true })
  await received(fake, 2)
  t.same(texts(fake).slice(0, 2), ['READY=1\nSTATUS=Ready', 'STATUS=disk\nERRNO=5'])
})

t.test('extendStartTimeout keeps extending while a slow onModuleInit runs, and stops at READY', async (t) => {
  const fake = await withFake(t)
  await scenario('extend', fake)
  const messages = texts(fake)
  const ready = messages.indexOf('READY=1\nSTATUS=Ready')
  t.ok(ready >= 4, `${ready} extensions during a 450 ms onModuleInit`)
  t.ok(messages.slice(0, ready).every((m) => m === 'EXTEND_TIMEOUT_USEC=1000000'))
  t.same(messages.slice(ready + 1), ['STOPPING=1\nSTATUS=Shutting down'], 'none after READY')
})

t.test('watchdog with terminus indicators: pings while up, none while down', async (t) => {
  const fake = await withFake(t)
  const { unhealthy } = await scenario('terminus', fake)
  const messages = texts(fake)
  const down = messages.findIndex((m) => m.startsWith('STATUS=Unhealthy'))
  t.ok(down > 0, 'the unhealthy status was reported')
  t.ok(messages.slice(0, down).filter((m) => m === 'WATCHDOG=1').length >= 2, 'pings while the indicator was up')
  t.equal(messages.slice(down).filter((m) => m === 'WATCHDOG=1').length, 0, 'no ping after it went down')
  t.match(unhealthy[0], /health check failed/)
})

t.test('options are validated, naming the option', async (t) => {
  const { errors } = await scenario('invalid', null)
  t.match(errors[0], {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'readyOn',
    message: /readyOn must be 'auto', 'listen' or 'bootstrap'/,
  })
  t.match(errors[1], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'extendStartTimeout.extendMs' })
  t.match(errors[2], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'extendStartTimeout.maxMs' })
  t.match(errors[3], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'handleSignals', message: /enableShutdownHooks/ })
  t.match(errors[4], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'readyStatus', message: /string or a function/ })
  t.match(errors[5], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'shutdownTimeoutMs' })
})

t.test('HTTPS (httpsOptions): a request in flight during app.close() completes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-nest-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  const subject = ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', ...subject]
  execFileSync('openssl', args, { stdio: 'pipe' })
  const fake = await withFake(t)
  const result = await scenario('https', fake, undefined, { TLS_KEY: key, TLS_CERT: cert })
  const completed = { status: 200, body: 'slow done', connection: 'close' }
  t.same(result.response, completed, 'completed, and told the client to close')
  await received(fake, 2)
  t.equal(texts(fake)[0], `READY=1\nSTATUS=Listening on https://127.0.0.1:${result.port}`)
  t.equal(texts(fake)[1], 'STOPPING=1\nSTATUS=Shutting down: draining 1 connection')
})

t.test('shutdownTimeoutMs: a request still running then has its connection closed, and app.close() ends', async (t) => {
  const fake = await withFake(t)
  const result = await scenario('timeout', fake)
  t.equal(result.closed, true)
  t.ok(result.response.error, `the client saw its connection closed (${result.response.error})`)
})

t.test('a readyStatus callback that throws: READY=1 with the default status, logged; the app lives', async (t) => {
  const fake = await withFake(t)
  const result = await scenario('throwing-ready', fake)
  t.equal(result.body, 'hello', 'still serving')
  await received(fake, 1)
  t.equal(texts(fake)[0], `READY=1\nSTATUS=Listening on http://127.0.0.1:${result.port}`)
  t.ok(result.errors.some((m) => String(m).includes('status template broken')), JSON.stringify(result.errors))
})

t.test('readyStatus gets ReadyInfo, stoppingStatus may be a string; both are sent as single lines', async (t) => {
  const fake = await withFake(t)
  await scenario('statuses', fake)
  await received(fake, 2)
  t.same(texts(fake), ['READY=1\nSTATUS=up on 1 address', 'STOPPING=1\nSTATUS=Bye now'])
})

t.test('a listen error: ERRNO and status reach systemd once, then app.listen() rejects with the error', async (t) => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const fake = await withFake(t)
  const result = await scenario('listen-error', fake, String(port))
  t.same(result, { code: 'EADDRINUSE' }, 'the app gets the error as from Nest without the module')
  const report = `STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`
  t.same(texts(fake), [report], 'sent once')
})

t.test('after listening, a server error is not swallowed by the module', async (t) => {
  t.same(await scenario('server-error', null), { listeners: 0, thrown: 'EMFILE' })
})

t.test('extendStartTimeout.maxMs bounds the extensions: none asks for time past maxMs', async (t) => {
  const fake = await withFake(t)
  const { warnings } = await scenario('extend-max', fake)
  const messages = texts(fake)
  const extensions = messages.filter((m) => m.startsWith('EXTEND_TIMEOUT_USEC='))
  t.ok(extensions.length >= 1, `${extensions.length} extensions`)
  const usec = extensions.map((m) => Number(m.split('=')[1]))
  t.ok(usec.every((value) => value <= 250_000), `each within maxMs: ${usec.join(', ')}`)
  t.ok(usec.every((value, i) => i === 0 || value < (usec[i - 1] as number)), 'each asks for less: only the time left')
  const lastExtension = messages.lastIndexOf(extensions.at(-1) as string)
  t.ok(messages.indexOf('READY=1\nSTATUS=Ready') > lastExtension, 'READY after the last one')
  t.ok(warnings.some((w) => w.includes('maxMs')), 'the end of the extensions is logged')
})

t.test('onReload: SIGHUP under systemd only; a failing reload still sends READY=1, single-line status', async (t) => {
  const outside = await scenario('reload', null, 'ok')
  t.same(outside, { installed: 0, runs: 0, after: 0, errors: [] }, 'no SIGHUP handler without $NOTIFY_SOCKET')
  const fake = await withFake(t)
  const ok = await scenario('reload', fake, 'ok')
  t.match(ok, { installed: 1, runs: 1, after: 0 })
  const okMessages = texts(fake)
  t.match(okMessages[1], /^RELOADING=1\nMONOTONIC_USEC=\d+$/)
  t.match(okMessages[2], /^READY=1\nSTATUS=Listening on http:\/\/127\.0\.0\.1:\d+$/)
  const failing = await withFake(t)
  const failed = await scenario('reload', failing, 'fail')
  t.match(failed, { installed: 1, runs: 1, after: 0 })
  t.match(texts(failing)[2], /^READY=1\nSTATUS=Reload failed: bad config at line 3\nERRNO=\d+$/)
  t.ok(failed.errors.some((m) => String(m).includes('bad config')), 'the failure is logged')
})

t.test('Test.createTestingModule without NOTIFY_SOCKET works and loads no native module', async (t) => {
  t.same(await scenario('testing', null), { ready: false, native: [], warned: false })
})

t.test('under systemd with no SIGTERM handler: one clear warning about enableShutdownHooks', async (t) => {
  const fake = await withFake(t)
  const result = await scenario('testing', fake)
  t.equal(result.warned, true, JSON.stringify(result))
})

t.test('CommonJS require()', (t) => {
  const script = `require('reflect-metadata'); const m = require(${JSON.stringify(distCjs)})
console.log(typeof m.SdNotifyModule.forRoot, typeof m.SdNotifyModule.forRootAsync, typeof m.SdNotifyService)`
  const out = execFileSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    cwd: pkg,
  })
  t.equal(out.trim(), 'function function function')
  t.end()
})
