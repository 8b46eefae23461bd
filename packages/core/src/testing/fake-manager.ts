// fakeManager(): a notify socket a test owns, so that users can check in their own CI, without systemd or
// root, that their service sends READY=1 only once listening, STOPPING=1 on shutdown, and pings on time.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAX_MESSAGE_BYTES, SdNotifyError, SUN_PATH_BYTES } from '../index.js'
import { createReceiver, type RawDatagram, type Receiver } from './receiver.js'

/** A notification as systemd reads it: `{ READY: '1', STATUS: 'Listening on …' }`. */
export type ReceivedNotification = Readonly<Record<string, string>>

/** Every datagram received, the ones systemd would ignore included. */
export interface Datagram {
  /** The datagram as sent. */
  readonly text: string
  /** Its assignments (the same object as in `notifications`); empty when rejected. */
  readonly fields: ReceivedNotification
  /** How many file descriptors came with it (FDSTORE=1, BARRIER=1). They are closed on receipt. */
  readonly fds: number
  /** The sending process (SO_PASSCRED): systemd's NotifyAccess=main accepts only the main process's pid. */
  readonly pid: number | undefined
  readonly uid: number | undefined
  /** When the kernel queued it, in ms since the epoch (like Date.now()). */
  readonly receivedAt: number
  /** Why systemd would ignore the whole datagram (too long, an embedded NUL), when it would. */
  readonly rejected: string | undefined
}

export interface WatchdogViolation {
  /** `missed`: no WATCHDOG=1 within the timeout; `trigger`: the service sent WATCHDOG=trigger. */
  readonly kind: 'missed' | 'trigger'
  /** When it was detected, in ms since the epoch. */
  readonly at: number
  /** The last WATCHDOG=1 (or READY=1) before it, in ms since the epoch. */
  readonly lastPingAt: number
  /** How long the service had been silent when it was detected (at least `timeoutMs` for `missed`). */
  readonly gapMs: number
  /** The timeout in force (undefined for a WATCHDOG=trigger sent with no watchdog set). */
  readonly timeoutMs: number | undefined
}

export interface FakeManagerOptions {
  /** Give the app a watchdog of this many ms (WATCHDOG_USEC in `env`), and track its pings. */
  watchdogMs?: number
  /** The same in µs, as systemd gives it. */
  watchdogUsec?: number | bigint
  /**
   * Make a missed ping fatal, as it is under systemd (which kills the service): every `waitFor()` that has
   * not found its notification before the first violation rejects with it. Without this, violations are
   * only recorded in `watchdogViolations`.
   */
  enforceWatchdog?: boolean
  /** Bind an abstract name (`@…`) instead of a file in a temporary folder. */
  abstract?: boolean
}

/** What `waitFor()` looks for: values that must all match (strings exactly, RegExps by test), or a predicate. */
export type NotificationMatch =
  Readonly<Record<string, string | RegExp>> | ((notification: ReceivedNotification, datagram: Datagram) => boolean)

export interface WaitForOptions {
  /** Default 5000. */
  timeoutMs?: number
  /** Only notifications received after this one (e.g. the READY=1 that follows a RELOADING=1). */
  after?: ReceivedNotification
}

export interface FakeManager {
  /** The socket's address (the value of NOTIFY_SOCKET). */
  readonly address: string
  /**
   * The environment for the app under test: `{ ...process.env, ...manager.env }`. Besides NOTIFY_SOCKET (and
   * WATCHDOG_USEC when asked for), it clears the systemd variables the test process may itself have
   * inherited (a CI runner that runs under systemd): undefined values are left out by child_process.
   */
  readonly env: Readonly<{
    NOTIFY_SOCKET: string
    WATCHDOG_USEC?: string | undefined
    [name: string]: string | undefined
  }>
  /** The notifications received so far, in order (the ones systemd would ignore left out). */
  readonly notifications: readonly ReceivedNotification[]
  readonly datagrams: readonly Datagram[]
  /** The watchdog timeout given to the app, in ms, when one was asked for. */
  readonly watchdogMs: number | undefined
  /** Watchdog pings missed after READY=1 (tracked from READY=1 until STOPPING=1), and WATCHDOG=trigger. */
  readonly watchdogViolations: readonly WatchdogViolation[]
  /** Resolves with the first matching notification, received already or to come. */
  waitFor(match: NotificationMatch, options?: WaitForOptions): Promise<ReceivedNotification>
  /**
   * Stops reading, as a busy or frozen (SIGSTOP'd) manager: the kernel queue (net.unix.max_dgram_qlen) fills and
   * the app's sends must wait. Missed pings are judged once reading resumes, by the kernel's arrival stamps.
   */
  pause(): void
  /** Reads again: what waited in the kernel queue arrives, in order. */
  resume(): void
  /** Stops listening and removes the socket. Pending `waitFor()` calls reject. */
  close(): Promise<void>
}

/** How often the socket is read. Arrival times come from the kernel, so this only sets how soon we notice. */
const POLL_MS = 5
const DEFAULT_WAIT_MS = 5000
// The variables a test process may have inherited from a unit of its own; the app under test must not see them.
const INHERITED = [
  'NOTIFY_SOCKET',
  'WATCHDOG_USEC',
  'WATCHDOG_PID',
  'LISTEN_FDS',
  'LISTEN_PID',
  'LISTEN_FDNAMES',
  'FDSTORE',
]

function invalid (option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `sdnotify/testing: option ${option} ${rule}`, {
    field: option,
    rule,
  })
}

function watchdogUsecOf (options: FakeManagerOptions): bigint | undefined {
  const { watchdogMs, watchdogUsec } = options
  if (watchdogMs !== undefined && watchdogUsec !== undefined) {
    throw invalid('watchdogMs', 'and watchdogUsec cannot both be given')
  }
  if (watchdogMs !== undefined) {
    if (typeof watchdogMs !== 'number' || !Number.isFinite(watchdogMs) || watchdogMs < 1) {
      throw invalid('watchdogMs', `must be a number of milliseconds, at least 1 (got ${String(watchdogMs)})`)
    }
    return BigInt(Math.round(watchdogMs * 1000))
  }
  if (watchdogUsec !== undefined) {
    const ok =
      typeof watchdogUsec === 'bigint' || (typeof watchdogUsec === 'number' && Number.isSafeInteger(watchdogUsec))
    if (!ok || BigInt(watchdogUsec) < 1000n) {
      throw invalid('watchdogUsec', `must be a whole number of µs, at least 1000 (got ${String(watchdogUsec)})`)
    }
    return BigInt(watchdogUsec)
  }
  return undefined
}

function validate (options: unknown): FakeManagerOptions {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object')
  const known = ['watchdogMs', 'watchdogUsec', 'enforceWatchdog', 'abstract']
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw invalid(key, `is not an option (known: ${known.join(', ')})`)
  }
  const o = options as FakeManagerOptions
  for (const key of ['enforceWatchdog', 'abstract'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') {
      throw invalid(key, `must be true or false (got ${String(o[key])})`)
    }
  }
  return o
}

/** Splits a datagram as the manager does: one KEY=VALUE per line; a key given twice keeps its first value. */
export function parseNotification (text: string): ReceivedNotification {
  const fields: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=')
    if (eq <= 0) continue
    const key = line.slice(0, eq)
    // systemd looks values up with strv_find_startswith(), which finds the first.
    if (!Object.hasOwn(fields, key)) fields[key] = line.slice(eq + 1)
  }
  return Object.freeze(fields)
}

function rejection (raw: RawDatagram): string | undefined {
  // systemd's manager_dispatch_notify_fd(): the whole datagram is ignored in both cases.
  if (raw.truncated) return `longer than ${MAX_MESSAGE_BYTES} bytes`
  const nul = raw.bytes.indexOf(0)
  if (nul >= 0 && nul < raw.bytes.length - 1) return 'contains a NUL byte'
  return undefined
}

function describeMatch (match: NotificationMatch): string {
  if (typeof match === 'function') return `the predicate ${match.name || '(anonymous)'}`
  const parts = Object.entries(match).map(
    ([key, value]) => `${key}=${value instanceof RegExp ? String(value) : JSON.stringify(value)}`
  )
  return `{ ${parts.join(', ')} }`
}

function matches (match: NotificationMatch, notification: ReceivedNotification, datagram: Datagram): boolean {
  if (typeof match === 'function') return match(notification, datagram) === true
  for (const [key, expected] of Object.entries(match)) {
    const value = notification[key]
    if (value === undefined) return false
    if (expected instanceof RegExp ? !expected.test(value) : value !== expected) return false
  }
  return true
}

interface Waiter {
  check(): void
  reject(error: Error): void
}

/**
 * A notify socket for tests: give `env` to the app under test, then `await manager.waitFor({ READY: '1' })`.
 * Linux only (as systemd is), no root needed. Uses koffi (an optional dependency of @sdnotify/core).
 */
export async function fakeManager (options?: FakeManagerOptions): Promise<FakeManager> {
  const settings = validate(options)
  const usec = watchdogUsecOf(settings)
  if (settings.enforceWatchdog && usec === undefined) {
    throw invalid('enforceWatchdog', 'needs watchdogMs or watchdogUsec')
  }
  if (process.platform !== 'linux') {
    throw new SdNotifyError(
      'ERR_SDNOTIFY_UNSUPPORTED',
      `sdnotify/testing: fakeManager() needs Linux (this is ${process.platform}), as systemd does`
    )
  }
  let dir: string | undefined
  let address: string
  if (settings.abstract) {
    address = `@sdnotify-test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
  } else {
    dir = mkdtempSync(join(tmpdir(), 'sdnotify-test-'))
    address = join(dir, 'notify')
    if (Buffer.byteLength(address) >= SUN_PATH_BYTES) {
      rmSync(dir, { recursive: true, force: true })
      throw new SdNotifyError(
        'ERR_SDNOTIFY_UNSUPPORTED',
        `sdnotify/testing: ${address} is too long for a unix socket (${SUN_PATH_BYTES - 1} bytes at most): ` +
          'set TMPDIR to a shorter folder, or pass { abstract: true }'
      )
    }
  }
  let receiver: Receiver
  try {
    receiver = await createReceiver(address)
  } catch (error) {
    if (dir) rmSync(dir, { recursive: true, force: true })
    throw error
  }

  const watchdogMs = usec === undefined ? undefined : Number(usec) / 1000
  const env: Record<string, string | undefined> = Object.fromEntries(INHERITED.map((name) => [name, undefined]))
  env.NOTIFY_SOCKET = address
  if (usec !== undefined) env.WATCHDOG_USEC = String(usec)

  const notifications: ReceivedNotification[] = []
  const datagrams: Datagram[] = []
  /** The datagram of each notification (same index). */
  const sources: Datagram[] = []
  const violations: WatchdogViolation[] = []
  const waiters = new Set<Waiter>()
  // The watchdog as systemd runs it: armed by READY=1 (start-up complete), reset by WATCHDOG=1, re-timed by
  // WATCHDOG_USEC= (0 turns it off), fired at once by WATCHDOG=trigger (systemd ≥ 243); not after STOPPING=1.
  let timeoutMs = watchdogMs
  let lastPingAt: number | undefined
  let flagged = false
  let stopped = false
  let closed = false
  let paused = false
  /** notifications.length when the first violation happened, under enforceWatchdog. */
  let fatalAt: number | undefined

  const violate = (kind: WatchdogViolation['kind'], at: number, lastPing: number) => {
    violations.push(Object.freeze({ kind, at, lastPingAt: lastPing, gapMs: at - lastPing, timeoutMs }))
    if (kind === 'missed') flagged = true
    if (settings.enforceWatchdog && fatalAt === undefined) fatalAt = notifications.length
  }

  const track = (fields: ReceivedNotification, at: number) => {
    if (lastPingAt !== undefined && timeoutMs !== undefined && !stopped && !flagged && at - lastPingAt > timeoutMs) {
      violate('missed', at, lastPingAt) // a late ping: the gap is known in full
    }
    if (fields.WATCHDOG_USEC !== undefined && /^\d+$/.test(fields.WATCHDOG_USEC)) {
      const next = Number(fields.WATCHDOG_USEC) / 1000
      timeoutMs = next > 0 ? next : undefined
    }
    if (fields.READY === '1' && (lastPingAt === undefined || stopped)) {
      // Start-up complete (again, after a restart of the app against the same manager): the watchdog is armed.
      if (stopped) timeoutMs = watchdogMs
      stopped = false
      lastPingAt = at
      flagged = false
    }
    if (lastPingAt !== undefined && (fields.WATCHDOG === '1' || fields.WATCHDOG_USEC !== undefined)) {
      lastPingAt = at
      flagged = false
    }
    if (fields.WATCHDOG === 'trigger' && !stopped) violate('trigger', at, lastPingAt ?? at)
    if (fields.STOPPING === '1') stopped = true
  }

  const poll = () => {
    // Paused, nothing is read and silence is not judged: pings wait in the kernel queue with their arrival stamps.
    if (!paused) receive()
    for (const waiter of waiters) waiter.check()
  }
  const receive = () => {
    let raws: RawDatagram[]
    try {
      raws = receiver.drain()
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error as Error)
      return
    }
    for (const raw of raws) {
      const rejected = rejection(raw)
      const text = raw.bytes.toString('utf8')
      const fields = rejected === undefined ? parseNotification(text) : Object.freeze({})
      const datagram = Object.freeze({
        text,
        fields,
        fds: raw.fds,
        pid: raw.pid,
        uid: raw.uid,
        receivedAt: raw.receivedAt,
        rejected,
      })
      datagrams.push(datagram)
      if (rejected !== undefined) continue
      track(fields, raw.receivedAt)
      notifications.push(fields)
      sources.push(datagram)
    }
    // Silence: systemd's timer would have fired by now.
    const now = Date.now()
    if (lastPingAt !== undefined && timeoutMs !== undefined && !stopped && !flagged && now - lastPingAt > timeoutMs) {
      violate('missed', now, lastPingAt)
    }
  }
  // unref'd: a test that forgets close() still exits; a pending waitFor() keeps the process alive meanwhile.
  const timer = setInterval(poll, POLL_MS)
  timer.unref()

  const received = () => {
    const lines = datagrams.map(
      (d) => `  ${JSON.stringify(d.text)}${d.rejected ? ` (ignored by systemd: ${d.rejected})` : ''}`
    )
    return lines.length === 0 ? 'nothing was received' : `received ${lines.length}:\n${lines.join('\n')}`
  }

  const manager: FakeManager = {
    address,
    env: Object.freeze(env) as FakeManager['env'],
    notifications,
    datagrams,
    watchdogMs,
    watchdogViolations: violations,
    pause () {
      paused = true
    },
    resume () {
      paused = false
    },
    waitFor (match, waitOptions = {}) {
      if (typeof match !== 'function' && (typeof match !== 'object' || match === null)) {
        return Promise.reject(invalid('match', 'must be an object of values ({ READY: "1" }) or a predicate'))
      }
      const limit = waitOptions.timeoutMs ?? DEFAULT_WAIT_MS
      if (typeof limit !== 'number' || !(limit > 0)) {
        return Promise.reject(invalid('timeoutMs', `must be a positive number of milliseconds (got ${String(limit)})`))
      }
      let from = 0
      if (waitOptions.after !== undefined) {
        from = notifications.indexOf(waitOptions.after) + 1
        if (from === 0) return Promise.reject(invalid('after', 'must be a notification this manager received'))
      }
      return new Promise<ReceivedNotification>((resolve, reject) => {
        let next = from
        const waiter: Waiter = {
          check () {
            const end = fatalAt ?? notifications.length
            for (; next < end; next++) {
              const notification = notifications[next] as ReceivedNotification
              let found: boolean
              try {
                found = matches(match, notification, sources[next] as Datagram)
              } catch (error) {
                return settle(() => reject(error)) // a predicate that throws fails its own waitFor()
              }
              if (found) return settle(() => resolve(notification))
            }
            if (fatalAt !== undefined) {
              const v = violations[0] as WatchdogViolation
              const what =
                v.kind === 'trigger' ? 'sent WATCHDOG=trigger' : `sent no WATCHDOG=1 for ${Math.round(v.gapMs)} ms`
              const rule = `the service ${what} (timeout ${v.timeoutMs ?? 'none'} ms): systemd would have killed it`
              settle(() =>
                reject(
                  new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', `sdnotify/testing: watchdog: ${rule}; ${received()}`, {
                    field: 'WATCHDOG',
                    rule,
                  })
                )
              )
            }
          },
          reject: (error) => settle(() => reject(error)),
        }
        const deadline = setTimeout(() => {
          poll() // anything that arrived meanwhile counts
          if (!waiters.has(waiter)) return
          const rule = `no notification matching ${describeMatch(match)} within ${limit} ms`
          settle(() =>
            reject(new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', `sdnotify/testing: ${rule}; ${received()}`, { rule }))
          )
        }, limit)
        const settle = (done: () => void) => {
          clearTimeout(deadline)
          waiters.delete(waiter)
          done()
        }
        if (closed) {
          return waiter.reject(new SdNotifyError('ERR_SDNOTIFY_CLOSED', 'sdnotify/testing: the fake manager is closed'))
        }
        waiters.add(waiter)
        poll()
      })
    },
    // eslint-disable-next-line @typescript-eslint/require-await -- async: a failure below rejects, as callers expect
    async close () {
      if (closed) return
      closed = true
      clearInterval(timer)
      receiver.close()
      if (dir) rmSync(dir, { recursive: true, force: true })
      for (const waiter of waiters) {
        waiter.reject(new SdNotifyError('ERR_SDNOTIFY_CLOSED', 'sdnotify/testing: the fake manager was closed'))
      }
    },
  }
  return manager
}
