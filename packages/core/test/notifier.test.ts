import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createNotifier, SdNotifyError } from '../src/index.js'
import { fakeManager } from '../src/testing.js'

const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))

t.test('not under systemd: every call is a no-op resolving false, and no native module is loaded', (t) => {
  // A separate process, so that nothing this test file loaded can hide a load.
  const script = `
    import { createNotifier, listenFds } from ${JSON.stringify(dist)}
    const n = createNotifier()
    const results = [
      await n.ready('x'), await n.status('y'), await n.reloading(), await n.stopping(), await n.errno(5),
      await n.extendTimeout(1000), await n.mainPid(1), await n.send({ extra: { X_A: 1 } }), await n.barrier(),
      await n.storeFds([0], 'stdin'), await n.removeFds('stdin'), await n.watchdog.ping(), n.watchdog.start(),
    ]
    const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so))
    const transport = n.transport ?? null
    console.log(JSON.stringify({ results, native, enabled: n.enabled, transport, fds: listenFds() }))
  `
  const env = { ...process.env }
  for (const key of ['NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'WATCHDOG_USEC', 'WATCHDOG_PID']) {
    delete env[key]
  }
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' })
  const out = JSON.parse(stdout) as Record<string, unknown>
  t.same(out.results, Array(13).fill(false))
  t.same(out.native, [], 'neither koffi nor unix-dgram was loaded')
  t.equal(out.enabled, false)
  t.equal(out.transport, null)
  t.same(out.fds, [])
  t.end()
})

t.test('CommonJS consumers can require the package (require(esm): the same module as import)', (t) => {
  const script = `const sd = require(${JSON.stringify(dist)})
console.log(typeof sd.createNotifier, typeof sd.listenFds, typeof sd.SdNotifyError)`
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  t.equal(out.trim(), 'function function function')
  t.end()
})

t.test('strict mode rejects when not under systemd', async (t) => {
  const n = createNotifier({ strict: true, env: {} })
  await t.rejects(n.ready(), { code: 'ERR_SDNOTIFY_NO_SOCKET', field: 'NOTIFY_SOCKET' })
})

t.test('bad input is rejected with the field and rule, even when not under systemd', async (t) => {
  const n = createNotifier({ env: {} })
  await t.rejects(n.status('a\nREADY=1'), { code: 'ERR_SDNOTIFY_INVALID_FIELD', field: 'STATUS', message: /newline/ })
  await t.rejects(n.errno(-3), { name: 'SdNotifyError', field: 'ERRNO' })
  await t.rejects(n.extendTimeout(-1),
    { name: 'SdNotifyError', field: 'EXTEND_TIMEOUT_USEC', message: /positive number of milliseconds/ })
  await t.rejects(n.storeFds([], 'x'), { name: 'SdNotifyError', field: 'FDSTORE' })
  await t.rejects(n.storeFds([3], 'bad:name'), { name: 'SdNotifyError', field: 'FDNAME' })
  await t.rejects(n.barrier(0), { name: 'SdNotifyError', field: 'BARRIER' })
  t.throws(() => createNotifier({ transport: 'carrier-pigeon' as never }),
    { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'transport', message: /fd, koffi, unix-dgram, exec/ })
  t.throws(() => createNotifier({ sendTimeoutMs: 0 }), { name: 'SdNotifyError', field: 'sendTimeoutMs' })
  t.throws(() => n.watchdog.start({ pingIntervalMs: -1 }),
    { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'watchdog.pingIntervalMs' })
  t.throws(() => n.watchdog.start({ healthCheck: 'yes' as never }),
    { name: 'SdNotifyError', field: 'watchdog.healthCheck' })
})

t.test('sends in call order, and records the status', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  t.equal(n.enabled, true)
  t.equal(n.transport, 'koffi')
  const sends = [n.status('one'), n.status('two'), n.ready('three'), n.send({ extra: { X_DONE: 1 } })]
  t.same(await Promise.all(sends), [true, true, true, true])
  await fake.waitFor({ X_DONE: '1' })
  t.same(fake.datagrams.map((d) => d.text), ['STATUS=one', 'STATUS=two', 'READY=1\nSTATUS=three', 'X_DONE=1'])
  t.equal(n.lastStatus, 'three')
  await n.close()
  await t.rejects(n.ready(), { code: 'ERR_SDNOTIFY_CLOSED' })
})

t.test('unsetEnvironment removes the variables, so children do not inherit them', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const env: Record<string, string | undefined> = {
    NOTIFY_SOCKET: fake.address,
    WATCHDOG_USEC: '1000000',
    LISTEN_FDS: '1',
    PATH: '/usr/bin',
  }
  const n = createNotifier({ env, unsetEnvironment: true })
  t.same(env, { PATH: '/usr/bin' })
  t.equal(await n.ready(), true, 'the notifier still knows where to send')
  t.equal(n.watchdog.enabled, true)
  await fake.waitFor({ READY: '1' })
  await n.close()
})

t.test('describe() explains the choice and what to put in the unit file', async (t) => {
  const off = createNotifier({ env: {} }).describe()
  t.equal(off.enabled, false)
  t.match(off.unitFile.join('\n'), /Type=notify/)
  t.match(off.transports.find((p) => p.name === 'koffi'), { usable: false, reason: /NOTIFY_SOCKET is not set/ })

  const abstract = createNotifier({ env: { NOTIFY_SOCKET: '@x', PATH: '' } }).describe()
  t.equal(abstract.transport, 'koffi')
  t.match(abstract.transports.find((p) => p.name === 'unix-dgram'), { usable: false, reason: /abstract/ })
  t.match(abstract.transports.find((p) => p.name === 'exec'), { usable: false, reason: /not found/ })
  t.match(abstract.transports.find((p) => p.name === 'fd'), { usable: false, reason: /OpenFile=/ })
  t.match(abstract.unitFile.join('\n'), /NotifyAccess=main/)
  t.match(abstract.unitFile.join('\n'), /WatchdogSec=/)

  const exec = createNotifier({ env: { NOTIFY_SOCKET: '/run/x', PATH: '/usr/bin' }, transport: 'exec' }).describe()
  t.equal(exec.transport, 'exec')
  t.match(exec.unitFile.join('\n'), /NotifyAccess=all/)

  const vsock = createNotifier({ env: { NOTIFY_SOCKET: 'vsock:2:9', PATH: '/usr/bin' } }).describe()
  t.equal(vsock.transport, 'exec')
  t.match(vsock.transports.find((p) => p.name === 'koffi'), { usable: false, reason: /AF_VSOCK/ })

  const bad = createNotifier({ env: { NOTIFY_SOCKET: 'relative', PATH: '' } })
  t.match(bad.describe().transports.find((p) => p.name === 'koffi'), { usable: false, reason: /absolute path/ })
  await t.rejects(bad.ready(),
    { code: 'ERR_SDNOTIFY_UNSUPPORTED', message: /no transport can reach the service manager.*absolute path/ })

  const fd = createNotifier({
    env: { NOTIFY_SOCKET: '/run/x', LISTEN_FDS: '1', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'notify' },
  })
  t.equal(fd.transport, 'fd')
  t.notMatch(fd.describe().unitFile.join('\n'), /OpenFile=/)

  // fdStore (issue 12): what to add while $FDSTORE (systemd ≥ 254) does not show a FileDescriptorStoreMax=.
  t.match(abstract.unitFile.join('\n'), /FileDescriptorStoreMax=1 .*fdStore/)
  const stored = createNotifier({ env: { NOTIFY_SOCKET: '/run/x', FDSTORE: '2', PATH: '' } }).describe()
  t.notMatch(stored.unitFile.join('\n'), /FileDescriptorStoreMax=/)
  t.notMatch(off.unitFile.join('\n'), /FileDescriptorStoreMax=/, 'not under systemd: nothing about the store')
})

t.test('a send to a missing socket rejects with the transport and errno, and the next send reconnects', async (t) => {
  const fake = await fakeManager()
  const address = fake.address
  await fake.close() // the manager is gone (a daemon-reexec would keep its socket: systemd passes it to its new self)
  const n = createNotifier({ env: { NOTIFY_SOCKET: address } })
  const error = await n.ready().catch((e: unknown) => e)
  t.ok(error instanceof SdNotifyError)
  t.match(error,
    { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'koffi', errno: /ENOENT|ECONNREFUSED/, syscall: 'sendto' })
  t.match((error as Error).message, /is the service manager running, and is NOTIFY_SOCKET right\?/)
  await n.close()
})
