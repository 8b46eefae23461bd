import t from 'tap'
import { inheritedFds, listenFds, notifyFd } from '../src/listen-fds.js'
import { watchdogSettings } from '../src/watchdog.js'

const pid = 4321
t.test('sd_listen_fds_with_names', async (t) => {
  const env = { LISTEN_FDS: '3', LISTEN_PID: String(pid), LISTEN_FDNAMES: 'http:notify:' }
  t.same(inheritedFds(env, pid), [
    { fd: 3, name: 'http' },
    { fd: 4, name: 'notify' },
    { fd: 5, name: 'unknown' },
  ])
  t.same(listenFds({ env, pid }), [
    { fd: 3, name: 'http' },
    { fd: 5, name: 'unknown' },
  ], 'the notify descriptor of OpenFile= is never offered as a listening socket')
  t.same(listenFds({ env, pid, name: 'http' }), [{ fd: 3, name: 'http' }])
  t.equal(notifyFd(env, pid), 4)
  t.same(inheritedFds({ LISTEN_FDS: '2', LISTEN_PID: String(pid) }, pid), [
    { fd: 3, name: 'unknown' },
    { fd: 4, name: 'unknown' },
  ])
})

t.test('descriptors meant for another process are not ours', async (t) => {
  t.same(listenFds({ env: { LISTEN_FDS: '1', LISTEN_PID: '1' }, pid }), [])
  t.equal(notifyFd({ LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'notify' }, pid), undefined)
  t.same(listenFds({ env: {}, pid }), [])
})

t.test('malformed variables are named', async (t) => {
  t.throws(() => listenFds({ env: { LISTEN_FDS: 'two', LISTEN_PID: String(pid) }, pid }), { name: 'SdNotifyError', field: 'LISTEN_FDS' })
  t.throws(() => listenFds({ env: { LISTEN_FDS: '1', LISTEN_PID: 'me' }, pid }), { name: 'SdNotifyError', field: 'LISTEN_PID' })
  t.throws(() => listenFds({ env: { LISTEN_FDS: '2', LISTEN_PID: String(pid), LISTEN_FDNAMES: 'a' }, pid }), {
    name: 'SdNotifyError',
    field: 'LISTEN_FDNAMES',
    message: /names 1 descriptors but LISTEN_FDS is 2/,
  })
})

t.test('unsetEnvironment removes LISTEN_* from the environment', async (t) => {
  const env: Record<string, string | undefined> = { LISTEN_FDS: '1', LISTEN_PID: String(pid), LISTEN_FDNAMES: 'web', OTHER: 'x' }
  t.same(listenFds({ env, pid, unsetEnvironment: true }), [{ fd: 3, name: 'web' }])
  t.same(env, { OTHER: 'x' })
})

t.test('process.env is remembered, so unsetting does not hide the sockets from later calls', async (t) => {
  const saved = { ...process.env }
  t.teardown(() => {
    for (const key of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete process.env[key]
    Object.assign(process.env, saved)
  })
  // Note: this test file must not read process.env's LISTEN_* before this point.
  Object.assign(process.env, { LISTEN_FDS: '1', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'api' })
  t.same(listenFds({ unsetEnvironment: true }), [{ fd: 3, name: 'api' }])
  t.equal(process.env.LISTEN_FDS, undefined, 'children will not inherit them')
  t.same(listenFds(), [{ fd: 3, name: 'api' }], 'a later call in this process still sees them')
})

t.test('sd_watchdog_enabled', async (t) => {
  t.match(watchdogSettings({ WATCHDOG_USEC: '2000000' }, pid), { enabled: true, timeoutMs: 2000 })
  t.match(watchdogSettings({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(pid) }, pid), { enabled: true })
  t.match(watchdogSettings({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '1' }, pid), { enabled: false, reason: /another process/ })
  t.match(watchdogSettings({}, pid), { enabled: false, reason: /not set/ })
  t.match(watchdogSettings({ WATCHDOG_USEC: '0' }, pid), { enabled: false, reason: /not a positive/ })
  t.match(watchdogSettings({ WATCHDOG_USEC: 'soon' }, pid), { enabled: false, reason: /not a positive/ })
})
