// Issue 12 for Express: `listen(app, { port, host, fdStore })` keeps the listening socket in systemd's fd store,
// so restarts, crashes and watchdog restarts refuse no connection; several listeners each under their name.
import { createServer as createHttpServer } from 'node:http'
import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import express from 'express'
import t from 'tap'
import {
  crashOrWedge,
  DEBIAN_ROOT,
  debianRootSkipReason,
  fakeManager as harnessFakeManager,
  type Manager,
  readEvents,
  restartableApp,
  restartsUnderLoad,
  spawnService,
  startManager,
  systemdSkipReason,
  testPort,
  waitForEvents,
} from '@sdnotify/systemd-harness'
import { type FakeManager, fakeManager } from '@sdnotify/core/testing'
import { attach, listen } from '../src/index.js'

const repo = fileURLToPath(new URL('../../..', import.meta.url))
const fixture = fileURLToPath(new URL('../fixtures/fd-store-app.mjs', import.meta.url))
const texts = (fake: FakeManager) => fake.datagrams.map((d) => d.text)

t.test('fdStore is validated by listen() and attach(): the option and the rule are named', (t) => {
  const cases: [unknown, string, RegExp][] = [
    // The FDNAME rules themselves are core's (sd_notify(3)): no ':', 1 to 255 characters…
    [{ name: 'a:b' }, 'fdStore.name', /^@sdnotify\/express: option fdStore\.name \S/],
    [{ name: 'x'.repeat(256) }, 'fdStore.name', /^@sdnotify\/express: option fdStore\.name \S/],
    ['yes', 'fdStore', /^@sdnotify\/express: option fdStore must be true, false or \{ name \}$/],
  ]
  for (const [fdStore, field, message] of cases) {
    const expected = { name: 'SdNotifyError', code: 'ERR_SDNOTIFY_INVALID_OPTION', field, message }
    t.throws(() => listen(express(), { port: 0, fdStore } as never), expected, `listen ${JSON.stringify(fdStore)}`)
    t.throws(() => attach(createHttpServer(), { fdStore } as never), expected, `attach ${JSON.stringify(fdStore)}`)
  }
  t.end()
})

/** A listening socket of the test's own, to pass to the service as systemd would. */
async function socketToPass (t: TapTest): Promise<{ server: Server; fd: number; port: number }> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve))
  t.teardown(() => server.close())
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  return { server, fd, port: (server.address() as { port: number }).port }
}
/** What these helpers need of tap's test object. */
type TapTest = { teardown(fn: () => unknown): void }

/** The test kit's fake manager, closed when the test ends. */
async function kitManager (t: TapTest): Promise<FakeManager> {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  return fake
}

/** Runs the fixture beside a fake manager until it listens; `passed` becomes its fd 3. */
async function service<Fake extends { address: string }> (
  t: TapTest,
  fake: Fake,
  env: Record<string, string>,
  passed?: { fd: number; name: string }
) {
  const log = `${fake.address}.log` // beside the fake socket, in its temporary folder
  const proc = spawnService(fixture, { NOTIFY_SOCKET: fake.address, SDN_LOG: log, ...env }, passed)
  t.teardown(() => { proc.child.kill('SIGKILL') })
  const [listening] = await waitForEvents(log, 'listening', 1, 15_000)
  if (!listening) throw new Error(`the fixture did not listen: ${proc.stderr()}`)
  const stop = async () => {
    proc.child.kill('SIGTERM')
    return proc.exited
  }
  return { fake, log, listening, stop, port: (listening.address as { port: number }).port }
}

t.test('fake manager: FDSTORE=1 FDNAME=http with the listening socket, after listening, before READY=1', async (t) => {
  // The harness's fake: it keeps the descriptors it receives (the kit closes them), to listen on one here.
  const fake = harnessFakeManager()
  t.teardown(() => fake.close())
  const { port, stop } = await service(t, fake, { PORT: '0', SDN_FDSTORE: 'true' })
  await fake.waitFor(2)
  const ready = `READY=1\nSTATUS=Listening on http://127.0.0.1:${port}`
  t.same(fake.messages.map((m) => m.text), ['FDSTORE=1\nFDNAME=http\nFDPOLL=0', ready])
  const [stored] = fake.messages[0]?.fds ?? []
  t.ok(stored !== undefined, 'one descriptor travelled with FDSTORE=1')
  // The descriptor systemd would keep is the server's listening socket: listening on it here shows its port.
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen({ fd: stored as number }, resolve))
  t.equal((probe.address() as { port: number }).port, port, 'it is the socket the app listens on')
  await new Promise((resolve) => probe.close(resolve))
  t.equal(await stop(), 0, 'graceful exit on SIGTERM')
})

t.test('a passed socket: listened on when it matches, dropped (a process warning) when the port changed', async (t) => {
  const socket = await socketToPass(t)
  const same = await service(
    t,
    await kitManager(t),
    { PORT: String(socket.port), SDN_FDSTORE: 'true' },
    { fd: socket.fd, name: 'http' }
  )
  socket.server.close() // the service holds it now: requests reach only the service
  await same.fake.waitFor({ READY: '1' })
  t.equal(same.listening.passed, 'http', 'listens on the stored socket')
  t.equal(same.port, socket.port)
  t.match(await (await fetch(`http://127.0.0.1:${socket.port}/`)).text(), `served by ${String(same.listening.pid)}`)
  const ready = `READY=1\nSTATUS=Listening on http://127.0.0.1:${socket.port}`
  t.same(texts(same.fake).slice(0, 2), ['FDSTORE=1\nFDNAME=http\nFDPOLL=0', ready])
  t.same(readEvents(same.log).filter((e) => e.event === 'warning'), [], 'no warning')
  await same.stop()

  const stale = await socketToPass(t)
  const moved = testPort()
  const changed = await service(
    t,
    await kitManager(t),
    { PORT: String(moved), SDN_FDSTORE: 'true' },
    { fd: stale.fd, name: 'http' }
  )
  t.equal(changed.port, moved, 'the configured port is bound anew')
  const [warning] = readEvents(changed.log).filter((e) => e.event === 'warning')
  const why = `"http" (fd 3) is bound to 127.0.0.1:${stale.port}, the configuration asks for 127.0.0.1:${moved}`
  t.match(warning, { code: 'SDNOTIFY_FDSTORE', message: why }, 'the reason is a process warning')
  await changed.fake.waitFor({ READY: '1' })
  t.same(texts(changed.fake).slice(0, 3), [
    'FDSTOREREMOVE=1\nFDNAME=http',
    'FDSTORE=1\nFDNAME=http\nFDPOLL=0',
    `READY=1\nSTATUS=Listening on http://127.0.0.1:${moved}`,
  ], 'the stale socket leaves the store before the new one is stored')
  await changed.stop()
})

t.test("a .socket unit's socket is used as passed (whatever the port says) and not stored again", async (t) => {
  const socket = await socketToPass(t)
  const activated = await service(
    t,
    await kitManager(t),
    { PORT: '1', SDN_FDSTORE: 'true' },
    { fd: socket.fd, name: 'web.socket' }
  )
  socket.server.close()
  await activated.fake.waitFor({ READY: '1' })
  t.equal(activated.listening.passed, 'web.socket')
  t.equal(activated.port, socket.port)
  t.same(texts(activated.fake), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${socket.port}`], 'no FDSTORE')
  await activated.stop()
})

t.test('socket activation without koffi (optional): the passed socket is used, as before the fd store', async (t) => {
  const socket = await socketToPass(t)
  const activated = await service(
    t,
    await kitManager(t),
    { PORT: '1', SDN_NO_KOFFI: '1' },
    { fd: socket.fd, name: 'web.socket' }
  )
  socket.server.close()
  t.equal(activated.listening.passed, 'web.socket')
  t.equal(activated.port, socket.port)
  const servedBy = `served by ${String(activated.listening.pid)}`
  t.match(await (await fetch(`http://127.0.0.1:${socket.port}/`)).text(), servedBy)
  await activated.fake.waitFor({ READY: '1' })
  t.same(texts(activated.fake), [`READY=1\nSTATUS=Listening on http://127.0.0.1:${socket.port}`])
  await activated.stop()
})

// ---- real systemd ------------------------------------------------------------------------------------------

const listened = (log: string) => readEvents(log).filter((e) => e.event === 'listening')
const warnings = (log: string) => readEvents(log).filter((e) => e.event === 'warning')
const app = (sd: Manager, env: Record<string, string>, options?: Parameters<typeof restartableApp>[3]) =>
  restartableApp(sd, fixture, { SDN_BOOT_MS: '300', ...env }, options)
const restart = (sd: Manager, unit: string) => () => sd.systemctl(['restart', unit])

t.test('Express fd store under systemd 252 (non-root, NotifyAccess=main)', { skip: systemdSkipReason() }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())

  t.test('5 × systemctl restart under load: refused connections without fdStore, none with it', async (t) => {
    const plain = await app(sd, {}, { store: 0 })
    const without = await restartsUnderLoad(sd, plain.unit, [plain.port], restart(sd, plain.unit))
    t.ok((without.results[0]?.refused ?? 0) > 0, `without fdStore: ${without.results[0]?.refused} refused`)

    const stored = await app(sd, { SDN_FDSTORE: 'true' })
    const { results, props } = await restartsUnderLoad(sd, stored.unit, [stored.port], restart(sd, stored.unit))
    const [result] = results
    t.equal(result?.refused, 0, `no refused connection with fdStore (${JSON.stringify(result)})`)
    t.equal(result?.inFlight, 0, 'no request failed in flight: each old process drained before it exited')
    t.ok((result?.ok ?? 0) > 100, `${result?.ok} requests served`)
    t.equal(props.NFileDescriptorStore, '1', 'systemd holds one descriptor')
    const passed = listened(stored.log).map((e) => e.passed ?? 'bound')
    t.same(passed, ['bound', 'http', 'http', 'http', 'http', 'http'], 'bound once, then the stored socket every time')
    t.same(warnings(stored.log), [], 'no warning (systemd 252 does not set $FDSTORE: nothing to say)')
  })

  t.test('two listeners (API and admin) stored under their own names: 3 restarts under load on both', async (t) => {
    const adminPort = testPort()
    const both = await app(sd, { SDN_FDSTORE: 'http', SDN_ADMIN_PORT: String(adminPort) }, { store: 2 })
    const { results, props } = await restartsUnderLoad(sd, both.unit, [both.port, adminPort], async (i) => {
      await sd.systemctl(['restart', both.unit])
      await waitForEvents(both.log, 'listening', 2 * (i + 2)) // the admin listener too, before the next restart
    }, 3)
    for (const [label, result] of [['API', results[0]], ['admin', results[1]]] as const) {
      t.equal(result?.refused, 0, `${label}: no refused connection (${JSON.stringify(result)})`)
      t.equal(result?.inFlight, 0, `${label}: no request failed in flight`)
    }
    t.equal(props.NFileDescriptorStore, '2', 'systemd holds two descriptors')
    const passed = listened(both.log).map((e) => {
      const listener = (e.listener as string | undefined) ?? 'api'
      return `${listener}:${(e.passed as string | null) ?? 'bound'}`
    })
    const restarts = Array.from({ length: 3 }, () => ['api:http', 'admin:admin']).flat()
    t.same(passed, ['api:bound', 'admin:bound', ...restarts], 'each its own')
  })

  t.test('crash (exit 1) and watchdog restarts under load: no refused connection', async (t) => {
    const stored = await app(sd, { SDN_FDSTORE: 'true' }, { lines: ['WatchdogSec=1'] })
    const crashes = (i: number) => crashOrWedge(sd, stored.unit, i)
    const { results, props } = await restartsUnderLoad(sd, stored.unit, [stored.port], crashes)
    t.equal(results[0]?.refused, 0, `no refused connection (${JSON.stringify(results[0])})`)
    // Requests accepted by a process that then crashed or was killed by the watchdog cannot complete: counted
    // apart, and not the store's to prevent.
    t.comment(`in flight on the dying processes: ${results[0]?.inFlight}`)
    t.equal(props.NRestarts, '5', 'five restarts (3 crashes, 2 watchdog kills)')
    const fromStore = listened(stored.log).filter((e) => e.passed === 'http').length
    t.equal(fromStore, 5, 'each restart listened on the stored socket')
  })
})

const skip257 = debianRootSkipReason()
t.test('Express fd store under systemd 257 (Debian trixie root)', { skip: skip257 }, async (t) => {
  const sd = await startManager({ root: DEBIAN_ROOT, binds: [repo] })
  t.teardown(() => sd.stop())

  t.test('5 × systemctl restart under load with fdStore: none refused, none failed in flight', async (t) => {
    const stored = await app(sd, { SDN_FDSTORE: 'true' })
    const { results, props } = await restartsUnderLoad(sd, stored.unit, [stored.port], restart(sd, stored.unit))
    t.equal(results[0]?.refused, 0, `no refused connection (${JSON.stringify(results[0])})`)
    t.equal(results[0]?.inFlight, 0, 'no request failed in flight')
    t.equal(props.NFileDescriptorStore, '1')
    t.same(listened(stored.log).map((e) => e.passed ?? 'bound'), ['bound', 'http', 'http', 'http', 'http', 'http'])
    t.same(warnings(stored.log), [], 'no warning: systemd 257 sets $FDSTORE=1')
  })

  t.test('no FileDescriptorStoreMax=: core warns once, as a process warning, what to add', async (t) => {
    const unstored = await app(sd, { SDN_FDSTORE: 'true' }, { store: 0 })
    t.equal((await sd.systemctl(['start', unstored.unit])).code, 0)
    const [warning] = await waitForEvents(unstored.log, 'warning', 1, 5000)
    t.match(warning, { code: 'SDNOTIFY_FDSTORE', message: /no FileDescriptorStoreMax=.*Add FileDescriptorStoreMax=1/ })
    await sd.systemctl(['stop', unstored.unit])
  })
})
