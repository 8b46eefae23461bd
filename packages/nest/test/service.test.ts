// SdNotifyService's shortcuts and failure paths, and handleSignals / systemdListen in an application without
// SdNotifyModule. Nest runs in plain `node` children (test/service-scenarios.mjs; see DEVELOPERS.md), against the
// test kit's fake manager.
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { type FakeManager, fakeManager } from '@sdnotify/core/testing'
import { coverageEnv } from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const scenarios = fileURLToPath(new URL('./service-scenarios.mjs', import.meta.url))
const texts = (fake: FakeManager) => fake.datagrams.map((d) => d.text)

interface Run {
  code: number | null
  stdout: string
  stderr: string
  /** The last JSON line the scenario printed. */
  result: Record<string, unknown>
}

/**
 * Runs a scenario against the fake manager (none when fake is null), asynchronously: the fake manager must keep
 * reading its socket meanwhile. Resolves whatever the exit code.
 */
async function scenario (name: string, fake: FakeManager | null, arg?: string): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, ...coverageEnv() }
  delete env.NOTIFY_SOCKET
  if (fake) env.FAKE = fake.address
  else delete env.FAKE
  // Through env -u: tap re-adds its hooks (NODE_OPTIONS) to children, and they install signal handlers.
  const args = ['-u', 'NODE_OPTIONS', process.execPath, scenarios, name, ...(arg ? [arg] : [])]
  const run = await new Promise<Omit<Run, 'result'>>((resolve) => {
    const child = execFile('/usr/bin/env', args, { env, encoding: 'utf8', cwd: pkg }, (error, stdout, stderr) => {
      resolve({ code: error ? (child.exitCode ?? null) : 0, stdout, stderr })
    })
  })
  if (fake) await readEverything(fake)
  const last = run.stdout.trim().split('\n').pop() ?? ''
  return { ...run, result: last.startsWith('{') ? (JSON.parse(last) as Record<string, unknown>) : {} }
}

/**
 * The fake manager reads its socket in this process's event loop: wait until it has read what the child queued
 * before exiting (the count unchanged over 5 turns of 20 ms, each with an I/O poll; at most 3 s).
 */
async function readEverything (fake: FakeManager): Promise<void> {
  let seen = -1
  let stable = 0
  for (let waited = 0; stable < 5 && waited < 3000; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    stable = fake.datagrams.length === seen ? stable + 1 : 0
    seen = fake.datagrams.length
  }
}

async function withFake (t: TapTest): Promise<FakeManager> {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  return fake
}
/** What these helpers need of tap's test object. */
type TapTest = { teardown(fn: () => unknown): void }

/** A port some other process already listens on. */
async function busyPort (t: TapTest): Promise<number> {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  return (blocker.address() as { port: number }).port
}

t.test('SdNotifyService.extendTimeout, send, errno and status send exactly that, and resolve true', async (t) => {
  const fake = await withFake(t)
  const { code, result, stderr } = await scenario('shortcuts', fake)
  t.equal(code, 0, stderr)
  t.same(result.results, [true, true, true, true])
  t.same(texts(fake), [
    'READY=1\nSTATUS=Ready',
    'EXTEND_TIMEOUT_USEC=2500000',
    'STATUS=Migrating\nBUSERROR=org.freedesktop.DBus.Error.TimedOut',
    'ERRNO=13',
    'STATUS=still here',
    'STOPPING=1\nSTATUS=Shutting down',
  ])
})

t.test('a transport that cannot load: each failure is logged, the app serves and closes normally', async (t) => {
  const fake = await withFake(t)
  const { code, result, stderr } = await scenario('unreachable', fake)
  t.equal(code, 0, `the host did not crash: ${stderr}`)
  t.equal(result.body, 'hello', 'requests are served')
  const why = /^sdnotify: no transport can reach the service manager \(fd: no descriptor named "notify"/
  const warnings = result.warnings as string[]
  const prefixes = ['loading the notify transport failed: ', 'READY=1 failed: ', 'STOPPING=1 failed: ']
  for (const prefix of prefixes) {
    const warning = warnings.find((w) => w.startsWith(prefix))
    t.match(warning?.slice(prefix.length), why, `${prefix}the reason`)
  }
  t.same(result.errors, [], 'warnings only')
  t.same(texts(fake), [], 'nothing reached the manager')
})

t.test('a listen error whose report fails: logged, and app.listen() still rejects with the error', async (t) => {
  const fake = await withFake(t)
  const port = await busyPort(t)
  const { code, result, stderr } = await scenario('unreachable-listen-error', fake, String(port))
  t.equal(code, 0, stderr)
  t.equal(result.code, 'EADDRINUSE', 'the app gets its own error, as from Nest without the module')
  const warnings = result.warnings as string[]
  t.ok(warnings.some((w) => w.startsWith('reporting the listen error failed: sdnotify: no transport')), warnings.join())
})

t.test("a listen error nobody else listens for: systemd is told, then it is thrown as Node's emit would", async (t) => {
  const fake = await withFake(t)
  const port = await busyPort(t)
  const { code, stdout, stderr } = await scenario('unhandled-listen-error', fake, String(port))
  t.match(stdout, '{"errorListeners":1}', "only the module's own, until the server listens")
  t.equal(code, 1, 'the process ends with the uncaught error, as without the module')
  t.match(stderr, /EADDRINUSE/)
  const report = `STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\nERRNO=98`
  t.same(texts(fake), [report], 'systemd heard why before the process ended')
})

t.test("readyOn 'listen' without an HTTP server: a warning, and READY=1 at bootstrap all the same", async (t) => {
  const fake = await withFake(t)
  const { result } = await scenario('no-server', fake, 'readyOn')
  t.same(result.warnings, ["readyOn is 'listen' but the application has no HTTP server: sending READY=1 now"])
  t.same(texts(fake), ['READY=1\nSTATUS=Ready', 'STOPPING=1\nSTATUS=Shutting down'])
})

t.test('fdStore without an HTTP server: a warning, READY=1, and no FDSTORE', async (t) => {
  const fake = await withFake(t)
  const { result } = await scenario('no-server', fake, 'fdStore')
  t.same(result.warnings, ['fdStore is set, but the application has no HTTP server to store'])
  t.same(texts(fake), ['READY=1\nSTATUS=Ready', 'STOPPING=1\nSTATUS=Shutting down'])
})

t.test('watchdog.terminus without TerminusModule: READY=1, the reason logged, no unchecked pings', async (t) => {
  const fake = await withFake(t)
  const { code, result, stderr } = await scenario('terminus-missing', fake)
  t.equal(code, 0, `the host did not crash: ${stderr}`)
  const expected = 'starting the watchdog failed: watchdog.terminus needs TerminusModule imported by the application'
  t.same(result.warnings, [expected])
  t.equal(result.running, false)
  // Pinging without the health gate asked for would hide a broken service; systemd's WatchdogSec= restarts it.
  t.same(texts(fake), ['READY=1\nSTATUS=Ready', 'STOPPING=1\nSTATUS=Shutting down'])
})

t.test('a stoppingStatus callback that throws: STOPPING=1 with the default status, the error logged', async (t) => {
  const fake = await withFake(t)
  const { result } = await scenario('throwing-stopping', fake)
  t.same(texts(fake), ['READY=1\nSTATUS=Ready', 'STOPPING=1\nSTATUS=Shutting down (SIGTERM)'])
  const errors = result.errors as string[]
  t.same(errors, ['stoppingStatus failed; sent the default status instead: stopping template broken'])
})

t.test('onReload while SIGHUP already has a listener (enableShutdownHooks()): a warning saying why', async (t) => {
  const fake = await withFake(t)
  const { result } = await scenario('reload-sighup-taken', fake)
  const warnings = result.warnings as string[]
  t.equal(warnings.length, 1, warnings.join('\n'))
  const why = /^onReload is set but SIGHUP already has a listener: .*enableShutdownHooks\(\['SIGTERM', 'SIGINT'\]\)/
  t.match(warnings[0], why)
})

t.test('handleSignals(app) without SdNotifyModule: SIGTERM runs the shutdown hooks, then exit 0', async (t) => {
  const { code, result, stderr } = await scenario('signals-no-module', null)
  t.equal(code, 0, stderr)
  t.equal(result.shutdown, 'SIGTERM', 'the hooks got the signal')
  t.same(result.errors, [], 'nothing logged: the missing module is not an error')
  t.match(result.invalid, {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'handleSignals.signals',
    message: /must not include SIGHUP/,
  }, 'its options are checked first')
})

t.test('systemdListen(app, …) without SdNotifyModule or a passed socket: listens as app.listen would', async (t) => {
  const { code, result, stderr } = await scenario('listen-no-module', null)
  t.equal(code, 0, stderr)
  const served = { tcpBody: 'hello', unixBody: 'hello', errors: [], warnings: [] }
  t.same(result, served, 'on a port without a host, and on a unix socket path; nothing logged')
})
