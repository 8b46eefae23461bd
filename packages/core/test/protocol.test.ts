import t from 'tap'
import { encodeNotification, MAX_MESSAGE_BYTES, toAssignments } from '../src/protocol.js'
import { SdNotifyError } from '../src/errors.js'

const now = () => 123456789n

t.test('every typed field encodes as sd_notify(3) says', (t) => {
  t.same(toAssignments({ ready: true }), ['READY=1'])
  t.same(toAssignments({ stopping: true, status: 'Bye' }), ['STOPPING=1', 'STATUS=Bye'])
  t.same(toAssignments({ reloading: true }, now), ['RELOADING=1', 'MONOTONIC_USEC=123456789'],
    'RELOADING adds MONOTONIC_USEC')
  t.same(toAssignments({ reloading: true, monotonicUsec: 5n }), ['RELOADING=1', 'MONOTONIC_USEC=5'],
    'an explicit MONOTONIC_USEC wins')
  t.same(toAssignments({ monotonicUsec: 5n, reloading: true }), ['RELOADING=1', 'MONOTONIC_USEC=5'],
    'written in field order, whatever the key order')
  t.same(toAssignments({ reloading: true, monotonicUsec: undefined }, now), ['RELOADING=1', 'MONOTONIC_USEC=123456789'],
    'an undefined MONOTONIC_USEC is filled in, once')
  t.same(toAssignments({ reloading: false, monotonicUsec: undefined, status: 'x' }, now), ['STATUS=x'],
    'no MONOTONIC_USEC without RELOADING=1')
  t.same(toAssignments({ status: 'up', ready: true, extra: { X_A: 1 } }), ['READY=1', 'STATUS=up', 'X_A=1'],
    'typed fields in order, then extra')
  t.same(toAssignments({ errno: 2, status: 'No such file' }), ['STATUS=No such file', 'ERRNO=2'])
  t.same(toAssignments({ busError: 'org.freedesktop.DBus.Error.TimedOut' }),
    ['BUSERROR=org.freedesktop.DBus.Error.TimedOut'])
  t.same(toAssignments({ exitStatus: 3 }), ['EXIT_STATUS=3'])
  t.same(toAssignments({ mainPid: 4242 }), ['MAINPID=4242'])
  t.same(toAssignments({ watchdog: true }), ['WATCHDOG=1'])
  t.same(toAssignments({ watchdog: 'trigger' }), ['WATCHDOG=trigger'])
  t.same(toAssignments({ watchdogUsec: 30_000_000 }), ['WATCHDOG_USEC=30000000'])
  t.same(toAssignments({ extendTimeoutUsec: 5_000_000 }), ['EXTEND_TIMEOUT_USEC=5000000'])
  t.same(toAssignments({ notifyAccess: 'all' }), ['NOTIFYACCESS=all'])
  t.same(toAssignments({ fdStore: true, fdName: 'db', fdPoll: false }), ['FDSTORE=1', 'FDNAME=db', 'FDPOLL=0'])
  t.same(toAssignments({ fdStoreRemove: true, fdName: 'db' }), ['FDSTOREREMOVE=1', 'FDNAME=db'])
  t.same(toAssignments({ barrier: true }), ['BARRIER=1'])
  t.same(toAssignments({ ready: true, extra: { X_GENERATION: 7, X_WARM: true, X_NAME: 'a b' } }),
    ['READY=1', 'X_GENERATION=7', 'X_WARM=1', 'X_NAME=a b'])
  t.same(toAssignments({ ready: false, status: 'still starting' }), ['STATUS=still starting'],
    'false flags are left out')
  t.same(toAssignments({ status: '' }), ['STATUS='], 'an empty status clears it')
  t.equal(encodeNotification({ ready: true, status: 'Listening on http://[::1]:3000 ✓' }).toString(), 'READY=1\nSTATUS=Listening on http://[::1]:3000 ✓')
  t.end()
})

type Test = Pick<typeof t, 'ok' | 'equal' | 'match' | 'fail'>
function rejects (t: Test, notification: unknown, field: string, rule: RegExp) {
  try {
    toAssignments(notification as never)
    t.fail(`${field}: expected an error`)
  } catch (error) {
    t.ok(error instanceof SdNotifyError, 'an SdNotifyError')
    const e = error as SdNotifyError
    t.equal(e.code, 'ERR_SDNOTIFY_INVALID_FIELD')
    t.equal(e.field, field, `names the field ${JSON.stringify(field)}`)
    t.match(e.message, rule)
    t.ok(e.message.includes(field), 'the message names the field')
  }
}

t.test('injection: a newline can never start a second field', (t) => {
  rejects(t, { status: 'ok\nMAINPID=1' }, 'STATUS', /newline/)
  rejects(t, { status: 'ok\n' }, 'STATUS', /newline/)
  rejects(t, { status: 'a\0b' }, 'STATUS', /NUL/)
  rejects(t, { fdName: 'x\nFDSTORE=1' }, 'FDNAME', /newline/)
  rejects(t, { extra: { X_A: 'v\nREADY=1' } }, 'X_A', /newline/)
  rejects(t, { busError: 'a.b\nREADY=1' }, 'BUSERROR', /newline/)
  rejects(t, { extra: { 'READY=1\nX': '1' } }, 'READY=1\nX', /\[A-Z\]/)
  rejects(t, { extra: { x_lower: '1' } }, 'x_lower', /\[A-Z\]\[A-Z0-9_\]\*/)
  rejects(t, { extra: { '1ABC': '1' } }, '1ABC', /\[A-Z\]/)
  rejects(t, { extra: { 'X-DASH': '1' } }, 'X-DASH', /\[A-Z\]/)
  rejects(t, { extra: { '': '1' } }, '', /\[A-Z\]/)
  t.end()
})

t.test('numbers: non-negative safe integers in range', (t) => {
  rejects(t, { errno: -1 }, 'ERRNO', /integer from 0 to 4095/)
  rejects(t, { errno: 1.5 }, 'ERRNO', /integer/)
  rejects(t, { errno: Number.NaN }, 'ERRNO', /integer/)
  rejects(t, { errno: '5' }, 'ERRNO', /integer/)
  rejects(t, { exitStatus: 256 }, 'EXIT_STATUS', /0 to 255/)
  rejects(t, { mainPid: 0 }, 'MAINPID', /1 to/)
  rejects(t, { mainPid: 2 ** 23 }, 'MAINPID', /1 to 4194304/)
  rejects(t, { watchdogUsec: 0 }, 'WATCHDOG_USEC', /from 1/)
  rejects(t, { extendTimeoutUsec: 2 ** 60 }, 'EXTEND_TIMEOUT_USEC', /from 1/)
  rejects(t, { monotonicUsec: -5n }, 'MONOTONIC_USEC', /from 1/)
  rejects(t, { extra: { X_N: Number.POSITIVE_INFINITY } }, 'X_N', /finite/)
  t.end()
})

t.test('other rules', (t) => {
  rejects(t, { ready: 1 }, 'READY', /true, false or undefined/)
  rejects(t, { watchdog: 'yes' }, 'WATCHDOG', /true, false/)
  rejects(t, { status: 42 }, 'STATUS', /string/)
  rejects(t, { notifyAccess: 'everyone' }, 'NOTIFYACCESS', /none, main, exec, all/)
  rejects(t, { busError: 'NotDotted' }, 'BUSERROR', /D-Bus error name/)
  rejects(t, { fdName: 'a:b' }, 'FDNAME', /':'/)
  rejects(t, { fdName: 'tab\there' }, 'FDNAME', /printable ASCII/)
  rejects(t, { fdName: 'x'.repeat(256) }, 'FDNAME', /1 to 255/)
  rejects(t, { fdName: '' }, 'FDNAME', /1 to 255/)
  rejects(t, { fdStoreRemove: true }, 'FDSTOREREMOVE', /FDNAME/)
  rejects(t, { fdPoll: false }, 'FDPOLL', /FDSTORE=1/)
  rejects(t, { ready: true, extra: { READY: 1 } }, 'READY', /reserved.*typed field ready/)
  rejects(t, { redy: true }, 'redy', /not a notification field/)
  rejects(t, {}, 'notification', /empty/)
  rejects(t, { ready: false }, 'notification', /empty/)
  rejects(t, null, 'notification', /must be an object/)
  rejects(t, 'READY=1', 'notification', /must be an object/)
  rejects(t, { extra: { X_O: {} } }, 'X_O', /string, number or boolean/)
  t.end()
})

t.test('size: systemd ignores messages over 4096 bytes', (t) => {
  t.equal(encodeNotification({ status: 'x'.repeat(MAX_MESSAGE_BYTES - 7) }).length, MAX_MESSAGE_BYTES)
  t.throws(() => encodeNotification({ status: 'x'.repeat(MAX_MESSAGE_BYTES - 6) }),
    { code: 'ERR_SDNOTIFY_INVALID_FIELD', message: /4097 bytes.*4096/ })
  t.end()
})

t.test('MONOTONIC_USEC comes from CLOCK_MONOTONIC (process.hrtime)', (t) => {
  const before = process.hrtime.bigint() / 1000n
  const [, line] = toAssignments({ reloading: true })
  const after = process.hrtime.bigint() / 1000n
  const value = BigInt((line as string).split('=')[1] as string)
  t.ok(value >= before && value <= after)
  t.end()
})

t.test('extra cannot smuggle a field sd_notify(3) defines', (t) => {
  // Each reserved key names the typed field to use instead.
  const typed: Record<string, string> = {
    READY: 'ready',
    RELOADING: 'reloading',
    STOPPING: 'stopping',
    MONOTONIC_USEC: 'monotonicUsec',
    STATUS: 'status',
    NOTIFYACCESS: 'notifyAccess',
    ERRNO: 'errno',
    BUSERROR: 'busError',
    EXIT_STATUS: 'exitStatus',
    MAINPID: 'mainPid',
    WATCHDOG: 'watchdog',
    WATCHDOG_USEC: 'watchdogUsec',
    EXTEND_TIMEOUT_USEC: 'extendTimeoutUsec',
    FDSTORE: 'fdStore',
    FDSTOREREMOVE: 'fdStoreRemove',
    FDNAME: 'fdName',
    FDPOLL: 'fdPoll',
    BARRIER: 'barrier',
  }
  for (const [key, field] of Object.entries(typed)) {
    const rule = new RegExp(`reserved by sd_notify\\(3\\).*use the typed field ${field}`)
    rejects(t, { status: 'x', extra: { [key]: 1 } }, key, rule)
    rejects(t, { extra: { [key]: 'true' } }, key, /reserved/)
  }
  // Fields without a typed field here: refused too, saying that they are not supported.
  for (const key of ['VARLINKERROR', 'MAINPIDFD', 'MAINPIDFDID', 'RESTART_RESET']) {
    rejects(t, { status: 'x', extra: { [key]: '1' } }, key, /reserved by sd_notify\(3\).*not supported/)
  }
  const smuggled = { code: 'ERR_SDNOTIFY_INVALID_FIELD', field: 'MAINPID' }
  t.throws(() => encodeNotification({ status: 'x', extra: { MAINPID: 1 } }), smuggled)
  const custom = toAssignments({ status: 'x', extra: { X_MAINPID: 1, READY_X: 'y', MY_STATUS: 'z' } })
  t.same(custom, ['STATUS=x', 'X_MAINPID=1', 'READY_X=y', 'MY_STATUS=z'], 'custom keys (X_ or not) are accepted')
  t.end()
})
