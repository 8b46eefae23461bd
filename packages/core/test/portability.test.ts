// Issue 14: what a process sees off Linux and on 32-bit platforms, in-process (process.platform and process.arch
// redefined around synchronous calls only, restored at once).
import t from 'tap'
import { systemdVariables } from '../src/environment.js'
import { inheritedFds, listenFds } from '../src/listen-fds.js'
import { loadLibc } from '../src/transports/libc.js'

function as<T> (property: 'platform' | 'arch', value: string, fn: () => T): T {
  const real = Object.getOwnPropertyDescriptor(process, property) as PropertyDescriptor
  Object.defineProperty(process, property, { value, configurable: true })
  try {
    return fn()
  } finally {
    Object.defineProperty(process, property, real)
  }
}

const listen = { LISTEN_FDS: '1', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'http' }

t.test('off Linux no systemd variable is read, whatever the environment says', (t) => {
  const env = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '1000000', ...listen }
  for (const platform of ['darwin', 'win32', 'freebsd']) {
    t.same(as('platform', platform, () => systemdVariables(env)), {}, platform)
    t.same(as('platform', platform, () => listenFds({ env })), [], `${platform}: no sockets taken`)
  }
  t.match(systemdVariables(env), { NOTIFY_SOCKET: '/run/systemd/notify', LISTEN_FDS: '1' }, 'the control: Linux')
  t.same(listenFds({ env }), [{ fd: 3, name: 'http' }])
  t.end()
})

// systemd ≥ 258 names the process by its pidfd's inode id; on 32-bit platforms it uses file handles instead, which
// sdnotify does not read: there the id is not checked (accepted, as libsystemd does when it cannot check).
t.test('LISTEN_PIDFDID is not checked on a 32-bit platform: a foreign id is accepted, not misread', async (t) => {
  await loadLibc()
  const env = { ...listen, LISTEN_PIDFDID: '1' } // no process has pidfd inode id 1
  t.same(as('arch', 'ia32', () => inheritedFds(env)), [{ fd: 3, name: 'http' }])
  t.throws(() => as('arch', 'ia32', () => inheritedFds({ ...env, LISTEN_PIDFDID: '-1' })),
    { name: 'SdNotifyError', field: 'LISTEN_PIDFDID' }, 'still validated')
  t.equal(process.arch === 'ia32', false, 'process.arch restored')
})
