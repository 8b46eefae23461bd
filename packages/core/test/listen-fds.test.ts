import { closeSync, fstatSync, openSync, statfsSync } from 'node:fs'
import t from 'tap'
import { inheritedFds, listenFds, notifyFd } from '../src/listen-fds.js'
import { F_GETFD, F_SETFD, FD_CLOEXEC, loadedLibc, loadLibc } from '../src/transports/libc.js'
import { watchdogSettings } from '../src/watchdog.js'

const pid = 4321
t.test('sd_listen_fds_with_names', (t) => {
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
  t.end()
})

t.test('descriptors meant for another process are not ours', (t) => {
  t.same(listenFds({ env: { LISTEN_FDS: '1', LISTEN_PID: '1' }, pid }), [])
  t.equal(notifyFd({ LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'notify' }, pid), undefined)
  t.same(listenFds({ env: {}, pid }), [])
  t.end()
})

t.test('malformed variables are named', (t) => {
  t.throws(
    () => listenFds({ env: { LISTEN_FDS: 'two', LISTEN_PID: String(pid) }, pid }),
    { name: 'SdNotifyError', field: 'LISTEN_FDS' }
  )
  t.throws(
    () => listenFds({ env: { LISTEN_FDS: '1', LISTEN_PID: 'me' }, pid }),
    { name: 'SdNotifyError', field: 'LISTEN_PID' }
  )
  t.throws(() => listenFds({ env: { LISTEN_FDS: '2', LISTEN_PID: String(pid), LISTEN_FDNAMES: 'a' }, pid }), {
    name: 'SdNotifyError',
    field: 'LISTEN_FDNAMES',
    message: /names 1 descriptors but LISTEN_FDS is 2/,
  })
  t.end()
})

t.test('unsetEnvironment removes LISTEN_* from the environment', (t) => {
  const env: Record<string, string | undefined> = {
    LISTEN_FDS: '1',
    LISTEN_PID: String(pid),
    LISTEN_FDNAMES: 'web',
    OTHER: 'x',
  }
  t.same(listenFds({ env, pid, unsetEnvironment: true }), [{ fd: 3, name: 'web' }])
  t.same(env, { OTHER: 'x' })
  t.end()
})

t.test('process.env is remembered, so unsetting does not hide the sockets from later calls', (t) => {
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
  t.end()
})

t.test('sd_watchdog_enabled', (t) => {
  t.match(watchdogSettings({ WATCHDOG_USEC: '2000000' }, pid), { enabled: true, timeoutMs: 2000 })
  t.match(watchdogSettings({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: String(pid) }, pid), { enabled: true })
  t.match(
    watchdogSettings({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '1' }, pid),
    { enabled: false, reason: /another process/ }
  )
  t.match(watchdogSettings({}, pid), { enabled: false, reason: /not set/ })
  t.match(watchdogSettings({ WATCHDOG_USEC: '0' }, pid), { enabled: false, reason: /not a positive/ })
  t.match(watchdogSettings({ WATCHDOG_USEC: 'soon' }, pid), { enabled: false, reason: /not a positive/ })
  t.end()
})

t.test('like sd_listen_fds(3): no LISTEN_PID, no descriptors (they may be a parent process\'s)', (t) => {
  t.same(inheritedFds({ LISTEN_FDS: '2' }, pid), [])
  t.same(listenFds({ env: { LISTEN_FDS: '1', LISTEN_FDNAMES: 'http' }, pid }), [])
  t.equal(notifyFd({ LISTEN_FDS: '1', LISTEN_FDNAMES: 'notify' }, pid), undefined)
  t.end()
})

t.test('an absurd LISTEN_FDS is refused, not allocated', (t) => {
  for (const count of ['4294967296', '99999999']) {
    const env = { LISTEN_FDS: count, LISTEN_PID: String(pid) }
    t.throws(() => inheritedFds(env, pid), { name: 'SdNotifyError', field: 'LISTEN_FDS' })
  }
  t.end()
})

/** This process's pidfd inode id (pidfs, Linux ≥ 6.9), read here independently of the code under test. */
async function ownPidfdId (): Promise<bigint | undefined> {
  const koffi = (await import('koffi')).default
  const pidfdOpen = koffi.load('libc.so.6').func('int pidfd_open(int, unsigned int)')
  const fd = pidfdOpen(process.pid, 0) as number
  if (fd < 0) return undefined
  try {
    return statfsSync(`/proc/self/fd/${fd}`).type === 0x50494446 ? fstatSync(fd, { bigint: true }).ino : undefined
  } finally {
    closeSync(fd)
  }
}

t.test('LISTEN_PIDFDID (systemd ≥ 258): checked against our pidfd inode id once koffi is loaded', async (t) => {
  const me = process.pid
  const env = (id: string) => ({ LISTEN_FDS: '1', LISTEN_PID: String(me), LISTEN_PIDFDID: id, LISTEN_FDNAMES: 'http' })
  const malformed = { name: 'SdNotifyError', field: 'LISTEN_PIDFDID' }
  t.throws(() => inheritedFds(env('x'), me), malformed)
  t.throws(() => inheritedFds(env('18446744073709551616'), me), malformed, 'more than 64 bits')
  t.equal(loadedLibc(), undefined, 'nothing in this file loaded koffi yet')
  const notCheckable = 'not checkable without koffi: accepted, like libsystemd'
  t.same(inheritedFds(env('1'), me), [{ fd: 3, name: 'http' }], notCheckable)
  await loadLibc()
  const own = await ownPidfdId()
  if (own === undefined) {
    t.comment('not checked here: pidfd inode ids need pidfs (Linux ≥ 6.9) and pidfd_open in libc')
    return
  }
  t.same(inheritedFds(env(String(own)), me), [{ fd: 3, name: 'http' }], 'our own id: ours')
  t.same(inheritedFds(env(String(own + 1n)), me), [], 'another process with our pid (e.g. in another pid namespace)')
  t.same(inheritedFds(env(String(own + 1n)), 4321), [], 'LISTEN_PID decides first')
})

t.test('descriptors passed to this process are marked close-on-exec (FD_CLOEXEC) once koffi is loaded', async (t) => {
  const libc = await loadLibc()
  const fd = openSync('/dev/null', 'r')
  t.teardown(() => closeSync(fd))
  t.equal(libc.fcntl(fd, F_SETFD, 0), 0, 'made inheritable, as systemd passes them')
  // LISTEN_FDS numbers descriptors from 3: name ours "http".
  const names = [...Array.from({ length: fd - 3 }, () => 'other'), 'http']
  const env = { LISTEN_FDS: String(names.length), LISTEN_PID: String(process.pid), LISTEN_FDNAMES: names.join(':') }
  t.same(listenFds({ env, name: 'http' }), [{ fd, name: 'http' }])
  t.equal(libc.fcntl(fd, F_GETFD, 0) & FD_CLOEXEC, FD_CLOEXEC, 'children will not inherit it')
  libc.fcntl(fd, F_SETFD, 0)
  listenFds({ env: { ...env, LISTEN_PID: '1' } })
  t.equal(libc.fcntl(fd, F_GETFD, 0) & FD_CLOEXEC, 0, "another process's descriptors are left alone")
})
