// The sd_notify(3) wire format: one datagram of newline-separated KEY=VALUE assignments.
// Pure functions only; no I/O here.
import { invalidField } from './errors.js'

/** systemd reads notifications into a NOTIFY_BUFFER_MAX (PIPE_BUF = 4096) byte buffer and ignores longer ones. */
export const MAX_MESSAGE_BYTES = 4096

/** Linux pid_max can be at most 2^22 (PID_MAX_LIMIT). */
const PID_MAX_LIMIT = 4_194_304

export type NotifyAccess = 'none' | 'main' | 'exec' | 'all'

/**
 * A notification as a typed object. Every field is optional; set the ones to send.
 * Field names follow sd_notify(3), in camelCase.
 */
export interface Notification {
  /** READY=1: start-up finished (Type=notify) or reload finished. */
  ready?: boolean
  /** RELOADING=1. MONOTONIC_USEC is added automatically unless `monotonicUsec` is given. */
  reloading?: boolean
  /** STOPPING=1: shutdown has begun. */
  stopping?: boolean
  /** STATUS=…: one line shown by `systemctl status` (StatusText). */
  status?: string
  /** ERRNO=…: the errno-style error the service failed with (StatusErrno). */
  errno?: number
  /** BUSERROR=…: a D-Bus error name such as `org.freedesktop.DBus.Error.TimedOut`. */
  busError?: string
  /** EXIT_STATUS=…: the exit status the service reports (0–255). */
  exitStatus?: number
  /** MAINPID=…: the service's main process is another process. */
  mainPid?: number
  /** WATCHDOG=1 (true) or WATCHDOG=trigger ('trigger', systemd ≥ 243). */
  watchdog?: boolean | 'trigger'
  /** WATCHDOG_USEC=…: change the watchdog timeout at run time. */
  watchdogUsec?: number
  /** EXTEND_TIMEOUT_USEC=…: ask for more time to start, reload or stop (systemd ≥ 236). */
  extendTimeoutUsec?: number
  /** NOTIFYACCESS=…: change NotifyAccess= at run time (systemd ≥ 254). */
  notifyAccess?: NotifyAccess
  /** FDSTORE=1: store the file descriptors sent with this message. */
  fdStore?: boolean
  /** FDNAME=…: the name of the stored (or removed) file descriptors. */
  fdName?: string
  /** FDSTOREREMOVE=1: remove the stored descriptors named by `fdName`. */
  fdStoreRemove?: boolean
  /** FDPOLL=0 (false): do not poll the stored descriptors for errors. Only with `fdStore`. */
  fdPoll?: boolean
  /** BARRIER=1: synchronisation point; use `notifier.barrier()`, which passes the pipe it needs. */
  barrier?: boolean
  /** MONOTONIC_USEC=…: CLOCK_MONOTONIC time in µs; required with RELOADING=1 (systemd ≥ 253). */
  monotonicUsec?: number | bigint
  /**
   * Other assignments, e.g. custom `X_…` fields (sd_notify(3): custom fields should start with X_).
   * Keys must match [A-Z][A-Z0-9_]* and must not be an assignment sd_notify(3) defines (READY, MAINPID, FDSTORE…):
   * those go through their typed fields, which check their rules.
   */
  extra?: Record<string, string | number | boolean>
}

const KEY_PATTERN = /^[A-Z][A-Z0-9_]*$/

/** The wire key of each typed field, in the order they are written. */
const FIELD_KEYS = {
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
} as const satisfies Record<Exclude<keyof Notification, 'extra'>, string>

type TypedField = keyof typeof FIELD_KEYS
const TYPED_FIELDS = Object.keys(FIELD_KEYS) as TypedField[]

/**
 * Every assignment sd_notify(3) defines (man page and src/core/service.c, systemd 259), which `extra` must not
 * carry: each has a typed field with its own rules (MAINPID=, FDSTORE=…), or is not supported here.
 * The value is the rule an `extra` key of that name breaks.
 */
const RESERVED_KEYS = new Map<string, string>([
  ...TYPED_FIELDS.map((field): [string, string] => [
    FIELD_KEYS[field],
    `is reserved by sd_notify(3): use the typed field ${field}, not extra`,
  ]),
  ...['VARLINKERROR', 'MAINPIDFD', 'MAINPIDFDID', 'RESTART_RESET'].map((key): [string, string] => [
    key,
    'is reserved by sd_notify(3) and not supported by sdnotify; extra is for custom fields (prefix them with X_)',
  ]),
])
const KNOWN_FIELDS = new Set<string>([...TYPED_FIELDS, 'extra'])
const FIELD_ORDER = new Map<string, number>(TYPED_FIELDS.map((field, index) => [field, index]))
const byFieldOrder = (a: TypedField, b: TypedField) => (FIELD_ORDER.get(a) as number) - (FIELD_ORDER.get(b) as number)

/** Reads CLOCK_MONOTONIC in µs: libuv's uv_hrtime (process.hrtime) uses CLOCK_MONOTONIC on Linux. */
export function monotonicUsec (): bigint {
  return process.hrtime.bigint() / 1000n
}

/** A value must fit on one line: a newline would start a second assignment (STATUS=ok\nMAINPID=1). */
function checkValue (key: string, value: string): string {
  if (value.includes('\n')) throw invalidField(key, 'must not contain a newline (it would start another field)')
  if (value.includes('\0')) throw invalidField(key, 'must not contain a NUL byte')
  return value
}

function flag (key: string, value: unknown): string | undefined {
  if (value === undefined || value === false) return undefined
  if (value !== true) throw invalidField(key, `must be true, false or undefined (got ${describeValue(value)})`)
  return '1'
}

function integer (key: string, value: unknown, min: number, max: number): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidField(key, `must be an integer from ${min} to ${max} (got ${describeValue(value)})`)
  }
  return String(value)
}

function positiveUsec (key: string, value: unknown): string {
  if (typeof value === 'bigint') {
    if (value < 1n || value >= 2n ** 64n - 1n) throw invalidField(key, `must be from 1 to 2^64-2 µs (got ${value})`)
    return value.toString()
  }
  return integer(key, value, 1, Number.MAX_SAFE_INTEGER)
}

function text (key: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidField(key, `must be a string (got ${describeValue(value)})`)
  return checkValue(key, value)
}

// sd_notify(3), FDNAME=: "up to 255 characters … must not contain control characters or ':'".
function fdName (value: unknown): string {
  const name = text('FDNAME', value)
  if (name.length === 0 || name.length > 255) throw invalidField('FDNAME', 'must be 1 to 255 characters long')

  if (!/^[\x20-\x7e]+$/.test(name)) throw invalidField('FDNAME', 'must contain only printable ASCII characters')
  if (name.includes(':')) throw invalidField('FDNAME', "must not contain ':'")
  return name
}

// A D-Bus error name is an interface-like name: two or more dot-separated elements of [A-Za-z_][A-Za-z0-9_]*, ≤ 255.
function busErrorName (value: unknown): string {
  const name = text('BUSERROR', value)
  if (name.length > 255 || !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(name)) {
    throw invalidField(
      'BUSERROR',
      `must be a D-Bus error name such as org.freedesktop.DBus.Error.Failed (got ${JSON.stringify(name)})`
    )
  }
  return name
}

function encodeField (field: TypedField, value: unknown): string | undefined {
  const key = FIELD_KEYS[field]
  switch (field) {
    case 'ready':
    case 'reloading':
    case 'stopping':
    case 'fdStore':
    case 'fdStoreRemove':
    case 'barrier':
      return flag(key, value)
    case 'fdPoll':
      if (value === undefined || value === true) return undefined // polling is systemd's default
      if (value !== false) throw invalidField(key, `must be true, false or undefined (got ${describeValue(value)})`)
      return '0'
    case 'watchdog':
      if (value === 'trigger') return 'trigger'
      return flag(key, value)
    case 'status':
      return text(key, value)
    case 'busError':
      return busErrorName(value)
    case 'fdName':
      return fdName(value)
    case 'errno':
      return integer(key, value, 0, 4095) // kernel errnos are < 4096 (MAX_ERRNO)
    case 'exitStatus':
      return integer(key, value, 0, 255)
    case 'mainPid':
      return integer(key, value, 1, PID_MAX_LIMIT)
    case 'watchdogUsec':
    case 'extendTimeoutUsec':
    case 'monotonicUsec':
      return positiveUsec(key, value)
    case 'notifyAccess':
      if (value !== 'none' && value !== 'main' && value !== 'exec' && value !== 'all') {
        throw invalidField(key, `must be one of none, main, exec, all (got ${describeValue(value)})`)
      }
      return value
  }
}

/**
 * Validates a notification and returns its assignments, in a stable order.
 * Throws SdNotifyError (ERR_SDNOTIFY_INVALID_FIELD) naming the field and the rule.
 */
export function toAssignments (notification: Notification, now: () => bigint = monotonicUsec): string[] {
  if (notification === null || typeof notification !== 'object' || Array.isArray(notification)) {
    throw invalidField('notification', 'must be an object such as { ready: true, status: "…" }')
  }
  // Only the fields present are visited, and only those are read (a notification usually has one or two):
  // this runs on every send, and each lookup of an absent property, or a walk over all eighteen typed
  // fields, costs several times more when the code is cold (measured: 20 µs against 7 µs per message).
  const present: TypedField[] = []
  let hasExtra = false
  for (const name in notification) {
    if (!KNOWN_FIELDS.has(name)) {
      const known = [...KNOWN_FIELDS].join(', ')
      throw invalidField(name, `is not a notification field (known: ${known}); put custom KEY=VALUE pairs in extra`)
    }
    if (name === 'extra') hasExtra = true
    else present.push(name as TypedField)
  }
  const fields = notification
  // RELOADING=1 needs MONOTONIC_USEC (systemd ≥ 253) or `systemctl reload` may return before the reload is done.
  let monotonic: number | bigint | undefined
  if (present.includes('monotonicUsec')) monotonic = fields.monotonicUsec
  if (monotonic === undefined && present.includes('reloading') && fields.reloading === true) {
    monotonic = now()
    if (!present.includes('monotonicUsec')) present.push('monotonicUsec')
  }
  if (present.length > 1) present.sort(byFieldOrder)
  const lines: string[] = []
  for (const field of present) {
    const value = field === 'monotonicUsec' ? monotonic : fields[field]
    if (value === undefined) continue
    const encoded = encodeField(field, value)
    if (encoded !== undefined) lines.push(FIELD_KEYS[field] + '=' + encoded)
  }
  if (hasExtra && fields.extra !== undefined) {
    if (fields.extra === null || typeof fields.extra !== 'object') {
      throw invalidField('extra', 'must be an object of KEY: value pairs')
    }
    for (const [key, value] of Object.entries(fields.extra)) {
      if (!KEY_PATTERN.test(key)) {
        throw invalidField(key, 'must match [A-Z][A-Z0-9_]* (upper-case letters, digits, underscores)')
      }
      // Every typed field's key is reserved, so an extra key can never repeat a line already written.
      const reserved = RESERVED_KEYS.get(key)
      if (reserved !== undefined) throw invalidField(key, reserved)
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        throw invalidField(key, `must be a string, number or boolean (got ${describeValue(value)})`)
      }
      if (typeof value === 'number' && !Number.isFinite(value)) throw invalidField(key, 'must be a finite number')
      let encoded: string
      if (typeof value === 'boolean') encoded = value ? '1' : '0'
      else encoded = checkValue(key, String(value))
      lines.push(`${key}=${encoded}`)
    }
  }
  if (present.includes('fdStoreRemove') && fields.fdStoreRemove === true && fields.fdName === undefined) {
    throw invalidField('FDSTOREREMOVE', 'needs FDNAME (fdName) to say which descriptors to remove')
  }
  if (present.includes('fdPoll') && fields.fdPoll === false && fields.fdStore !== true) {
    throw invalidField('FDPOLL', 'can only be sent with FDSTORE=1 (fdStore: true)')
  }
  if (lines.length === 0) throw invalidField('notification', 'is empty: set at least one field')
  return lines
}

/** Encodes a notification into the datagram systemd expects. */
export function encodeNotification (notification: Notification, now?: () => bigint): Buffer {
  const lines = toAssignments(notification, now)
  const message = Buffer.from(lines.length === 1 ? (lines[0] as string) : lines.join('\n'), 'utf8')
  if (message.length > MAX_MESSAGE_BYTES) {
    throw invalidField(
      'notification',
      `is ${message.length} bytes; systemd ignores messages over ${MAX_MESSAGE_BYTES} bytes`
    )
  }
  return message
}

export function describeValue (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
  if (typeof value === 'bigint') return `${value}n`
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}
