// Property-based tests (fast-check): whatever the input, the parsers and the encoder either throw an
// SdNotifyError or return something well-formed; they never throw anything else, and the encoder never
// writes a line nobody asked for. Run counts are kept modest so that the file runs in a few seconds.
import fc from 'fast-check'
import tap from 'tap'
import { parseNotifySocket, SUN_PATH_BYTES } from '../src/address.js'
import { SdNotifyError } from '../src/errors.js'
import { inheritedFds, SD_LISTEN_FDS_START } from '../src/listen-fds.js'
import { encodeNotification, type Notification, toAssignments } from '../src/protocol.js'

/** Runs `run`; an exception other than an SdNotifyError fails the property (fast-check then shrinks it). */
function sdNotifyErrorOr<T> (run: () => T, check: (result: T) => void): void {
  let result: T
  try {
    result = run()
  } catch (error) {
    if (error instanceof SdNotifyError) return
    throw error
  }
  check(result)
}

/** Fails the property with `what` unless `condition` holds. */
function must (condition: boolean, what: string): void {
  if (!condition) throw new Error(what)
}

function assertProperty (t: Pick<typeof tap, 'notOk'>, property: fc.IProperty<unknown>, numRuns: number): void {
  const details = fc.check(property, { numRuns })
  t.notOk(details.failed, details.failed ? (fc.defaultReportMessage(details) ?? 'failed') : `${numRuns} runs`)
}

// The wire key of each typed field (sd_notify(3)).
const KEYS: Record<Exclude<keyof Notification, 'extra'>, string> = {
  ready: 'READY',
  reloading: 'RELOADING',
  stopping: 'STOPPING',
  monotonicUsec: 'MONOTONIC_USEC',
  status: 'STATUS',
  errno: 'ERRNO',
  busError: 'BUSERROR',
  exitStatus: 'EXIT_STATUS',
  mainPid: 'MAINPID',
  watchdog: 'WATCHDOG',
  watchdogUsec: 'WATCHDOG_USEC',
  extendTimeoutUsec: 'EXTEND_TIMEOUT_USEC',
  notifyAccess: 'NOTIFYACCESS',
  fdStore: 'FDSTORE',
  fdStoreRemove: 'FDSTOREREMOVE',
  fdName: 'FDNAME',
  fdPoll: 'FDPOLL',
  barrier: 'BARRIER',
}
const RESERVED = [...Object.values(KEYS), 'VARLINKERROR', 'MAINPIDFD', 'MAINPIDFDID', 'RESTART_RESET']

const oddity = fc.anything({ maxDepth: 1 })
const text = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'ok\nMAINPID=1', 'a\0b', 'x'.repeat(5000)) }
)
/** Mostly valid values (so that many notifications are accepted and their output checked), some not. */
const mostly = <T>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<unknown> = oddity) =>
  fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: invalid })
const badNumber = fc.oneof(fc.integer(), fc.double(), oddity)
const integer = (min: number, max: number) => mostly(fc.integer({ min, max }), badNumber)
const goodUsec = fc.oneof(
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  fc.bigInt({ min: 1n, max: 2n ** 64n - 2n })
)
const usec = mostly(goodUsec, fc.oneof(fc.bigInt(), badNumber))
const flag = mostly(fc.boolean())
const busErrorName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}(\.[A-Za-z_][A-Za-z0-9_]{0,6}){1,3}$/)
const fdName = fc.stringMatching(/^[!-9;-~][ -9;-~]{0,20}$/)

const typedFields: Record<keyof typeof KEYS, fc.Arbitrary<unknown>> = {
  ready: flag,
  reloading: flag,
  stopping: flag,
  fdStore: flag,
  fdStoreRemove: flag,
  barrier: flag,
  fdPoll: flag,
  watchdog: mostly(fc.constantFrom(true, false, 'trigger')),
  status: mostly(text),
  busError: mostly(busErrorName, text),
  fdName: mostly(fdName, fc.oneof(fc.constantFrom('a:b', 'x'.repeat(256), ''), text)),
  notifyAccess: mostly(fc.constantFrom('none', 'main', 'exec', 'all'), fc.oneof(fc.constant('everyone'), oddity)),
  errno: integer(0, 4095),
  exitStatus: integer(0, 255),
  mainPid: integer(1, 4_194_304),
  watchdogUsec: usec,
  extendTimeoutUsec: usec,
  monotonicUsec: fc.oneof(usec, fc.constant(undefined)),
}
const extraKey = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^X_[A-Z0-9_]{0,12}$/) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Z][A-Z0-9_]{0,12}$/) },
  { weight: 1, arbitrary: fc.constantFrom(...RESERVED) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }
)
const extraValue = mostly(fc.oneof(text, fc.integer(), fc.double(), fc.boolean()))
const unknownField = fc.tuple(fc.string({ maxLength: 8 }), oddity)
/** Up to four typed fields, often extra, now and then an unknown key. */
const notification = fc
  .uniqueArray(fc.constantFrom(...(Object.keys(typedFields) as (keyof typeof KEYS)[])), { maxLength: 4 })
  .chain((fields) =>
    fc.record({
      ...Object.fromEntries(fields.map((field) => [field, typedFields[field]])),
      extra: fc.option(mostly(fc.dictionary(extraKey, extraValue, { maxKeys: 3 })), { nil: undefined, freq: 2 }),
      unknown: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: unknownField }),
    })
  )
  .map(({ unknown, extra, ...rest }) => {
    const result: Record<string, unknown> = extra === undefined ? rest : { ...rest, extra }
    if (unknown !== undefined) result[unknown[0]] = unknown[1]
    return result
  })
const anyNotification = fc.oneof({ weight: 12, arbitrary: notification }, { weight: 1, arbitrary: fc.anything() })

/** The keys the encoder must write for a notification it accepted, one each. */
function expectedKeys (input: Record<string, unknown>): string[] {
  const keys: string[] = []
  for (const [field, key] of Object.entries(KEYS)) {
    const value = input[field]
    if (field === 'fdPoll') {
      if (value === false) keys.push(key) // FDPOLL=0; true is systemd's default and is left out
    } else if (value !== undefined && value !== false) keys.push(key)
  }
  if (input.reloading === true && input.monotonicUsec === undefined) keys.push('MONOTONIC_USEC')
  if (input.extra !== undefined) keys.push(...Object.keys(input.extra as object))
  return keys.sort()
}

tap.test('encoder: throws SdNotifyError or writes exactly one line per given field, each under its key', (t) => {
  const now = () => 42n
  assertProperty(
    t,
    fc.property(anyNotification, (input) => {
      const fields = input as Record<string, unknown>
      const encode = () => ({
        lines: toAssignments(input as Notification, now),
        datagram: encodeNotification(input as Notification, now),
      })
      sdNotifyErrorOr(encode, ({ lines, datagram }) => {
        must(datagram.toString('utf8') === lines.join('\n'), 'the datagram is the lines joined by newlines')
        const keys = lines.map((line) => {
          must(!line.includes('\n') && !line.includes('\0'), `line ${JSON.stringify(line)} has no newline or NUL`)
          const key = line.slice(0, line.indexOf('='))
          must(/^[A-Z][A-Z0-9_]*$/.test(key), `line ${JSON.stringify(line)} starts with KEY=`)
          return key
        })
        const expected = expectedKeys(fields)
        const written = JSON.stringify([...keys].sort())
        must(written === JSON.stringify(expected), `wrote ${keys.join()}, expected ${expected.join()}`)
        must(typeof fields.status !== 'string' || lines.includes(`STATUS=${fields.status}`), 'STATUS kept as given')
        const extra = (fields.extra ?? {}) as Record<string, unknown>
        for (const key of Object.keys(extra)) {
          must(!RESERVED.includes(key), `extra wrote the reserved field ${key}`)
          const value = extra[key]
          must(typeof value !== 'string' || lines.includes(`${key}=${value}`), `${key} kept as given`)
        }
      })
    }),
    1500
  )
  t.end()
})

tap.test('encoder: extra never carries a field sd_notify(3) defines', (t) => {
  assertProperty(
    t,
    fc.property(fc.constantFrom(...RESERVED), extraValue, fc.boolean(), (key, value, withStatus) => {
      const extra = { [key]: value as string }
      try {
        toAssignments(withStatus ? { status: 'x', extra } : { extra })
      } catch (error) {
        if (error instanceof SdNotifyError && error.code === 'ERR_SDNOTIFY_INVALID_FIELD' && error.field === key) return
        throw error
      }
      throw new Error(`extra.${key} was accepted`)
    }),
    300
  )
  t.end()
})

const vsockPrefix = fc.constantFrom('vsock', 'vsock-stream', 'vsock-dgram', 'vsock-seqpacket', 'vsock-raw')
const vsockNumber = fc.oneof(fc.nat().map(String), fc.string({ maxLength: 12 }))
const notifySocket = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 130 }),
  fc.string({ unit: 'binary', maxLength: 120 }).map((s) => `/${s}`),
  fc.string({ unit: 'binary', maxLength: 120 }).map((s) => `@${s}`),
  fc.tuple(vsockPrefix, vsockNumber, vsockNumber).map(([prefix, cid, port]) => `${prefix}:${cid}:${port}`),
  fc.anything({ maxDepth: 0 })
)

tap.test('parseNotifySocket: throws SdNotifyError or returns a well-formed address', (t) => {
  const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
  assertProperty(
    t,
    fc.property(notifySocket, (value) => {
      sdNotifyErrorOr(
        () => parseNotifySocket(value as string),
        (address) => {
          must(typeof value === 'string', 'only strings are accepted')
          const text = value as string
          if (address.family === 'vsock') {
            const parts = text.split(':')
            must(parts.length === 3, 'vsock:CID:PORT')
            must(Number(parts[1]) === address.cid && Number(parts[2]) === address.port, 'CID and port as given')
            const uint32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 2 ** 32 - 1
            must(uint32(address.cid) && uint32(address.port), 'CID and port are uint32')
            return
          }
          const name = Buffer.from(text, 'utf8')
          const { sockaddr, abstract } = address
          must(text.startsWith('/') || text.startsWith('@'), 'a path or an abstract name')
          must(address.path === text && abstract === text.startsWith('@'), 'path and abstract flag as given')
          must(sockaddr.length === 2 + name.length + (abstract ? 0 : 1), 'addrlen covers the name (and NUL for a path)')
          must(sockaddr.length <= 2 + SUN_PATH_BYTES, 'fits struct sockaddr_un')
          must((LE ? sockaddr.readUInt16LE(0) : sockaddr.readUInt16BE(0)) === 1, 'sun_family is AF_UNIX')
          must(sockaddr.subarray(3, 2 + name.length).equals(name.subarray(1)), 'sun_path holds the name')
          if (abstract) must(sockaddr[2] === 0, 'an abstract name starts with NUL')
          else must(sockaddr[sockaddr.length - 1] === 0 && !sockaddr.subarray(2, -1).includes(0), 'one terminating NUL')
        }
      )
    }),
    1500
  )
  t.end()
})

const pid = 4321
const listenNumber = fc.oneof(
  fc.nat({ max: 40 }).map(String),
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '-1', '01', ' 1', '1e3', '0x10', '4294967296', '99999999999999999999', '1048573', '1048574')
)
const fdNames = fc.array(fc.constantFrom('http', 'notify', '', 'a b', 'x'), { maxLength: 40 })
const listenEnv = fc.record(
  {
    LISTEN_FDS: listenNumber,
    LISTEN_PID: fc.oneof({ weight: 3, arbitrary: fc.constant(String(pid)) }, { weight: 1, arbitrary: listenNumber }),
    LISTEN_PIDFDID: fc.oneof(listenNumber, fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String)),
    LISTEN_FDNAMES: fc.oneof(fdNames.map((names) => names.join(':')), fc.string({ maxLength: 20 })),
  },
  { requiredKeys: [] }
)

tap.test('inheritedFds (LISTEN_*): throws SdNotifyError naming the variable, or numbered, named fds', (t) => {
  assertProperty(
    t,
    fc.property(listenEnv, (env) => {
      try {
        const fds = inheritedFds(env, pid)
        must(env.LISTEN_PID === String(pid) || fds.length === 0, 'no descriptors meant for another process (or none)')
        must(fds.length === 0 || fds.length === Number(env.LISTEN_FDS), 'as many as LISTEN_FDS says')
        fds.forEach((entry, i) => {
          must(entry.fd === SD_LISTEN_FDS_START + i, 'numbered from fd 3')
          must(typeof entry.name === 'string' && entry.name !== '' && !entry.name.includes(':'), `name ${entry.name}`)
        })
      } catch (error) {
        const field = error instanceof SdNotifyError ? (error.field ?? '') : ''
        if ((error as SdNotifyError).code === 'ERR_SDNOTIFY_INVALID_FIELD' && field.startsWith('LISTEN_')) return
        throw error
      }
    }),
    1000
  )
  t.end()
})
