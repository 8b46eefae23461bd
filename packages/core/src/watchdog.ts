// sd_watchdog_enabled(3) and a health-gated pinger. Ticks run on a fixed-rate schedule (due at
// start + k × pingIntervalMs, however long a check or a send took) on unref'd timers, and each pings only
// while the process is healthy, so that systemd restarts it (Result=watchdog) when it is not. A tick never
// starts while another of the same start() runs; start() or stop() during a tick abandons it (it neither
// reports nor pings after its next await), and healthCheck is never called while an earlier call of it is
// pending (a tick waits for that call instead). Event-loop delay is measured as the lateness of a sentinel
// timer every min(maxEventLoopDelayMs / 4, 1 s): an idle process with the defaults wakes 8 times per
// WatchdogSec for it, at most once a second (WatchdogSec ≥ 8s), where perf_hooks' monitorEventLoopDelay woke
// it 50 times a second.
import { invalidOption, SdNotifyError } from './errors.js'
import type { SystemdVariables } from './environment.js'
import { errorText } from './status-text.js'

export interface WatchdogSettings {
  enabled: boolean
  /** The watchdog timeout (WatchdogSec=) in ms, when enabled. */
  timeoutMs: number | undefined
  /** Why it is (not) enabled. */
  reason: string
}

export function watchdogSettings (vars: SystemdVariables, pid = process.pid): WatchdogSettings {
  const usec = vars.WATCHDOG_USEC
  const disabled = (reason: string): WatchdogSettings => ({ enabled: false, timeoutMs: undefined, reason })
  if (usec === undefined) return disabled('WATCHDOG_USEC is not set (no WatchdogSec= in the unit)')
  if (!/^\d+$/.test(usec) || BigInt(usec) === 0n) {
    return disabled(`WATCHDOG_USEC=${JSON.stringify(usec)} is not a positive number of µs`)
  }
  if (vars.WATCHDOG_PID !== undefined && vars.WATCHDOG_PID !== String(pid)) {
    return disabled(`WATCHDOG_PID=${vars.WATCHDOG_PID} is another process (we are ${pid})`)
  }
  const timeoutMs = Math.max(1, Math.floor(Math.min(Number(usec), Number.MAX_SAFE_INTEGER) / 1000))
  return { enabled: true, timeoutMs, reason: `WatchdogSec=${timeoutMs / 1000}s` }
}

export interface WatchdogOptions {
  /** How often to ping, in ms. Default: half the watchdog timeout. */
  pingIntervalMs?: number
  /**
   * Unhealthy when the event loop may have been blocked longer than this. Measured as the lateness of a timer
   * that runs every min(this / 4, 1000) ms: a stall of D ms makes it between D minus that period and D ms
   * late, so every stall longer than this counts, and one from this minus the period on may count.
   * Default: half the watchdog timeout. `false` disables the check.
   */
  maxEventLoopDelayMs?: number | false
  /**
   * Your own check. Unhealthy when it throws, rejects, resolves `false` or takes too long. It is not called
   * again while a call is pending: a later tick waits for that call (unhealthy if it still has not settled).
   */
  healthCheck?: () => unknown
  /**
   * How long healthCheck may take, in ms. Default: a third of what the timeout leaves after pingIntervalMs
   * (at most half the interval). A check that fails is re-checked at once, and the re-check may take as long
   * again before it pings: pingIntervalMs + 2 × healthCheckTimeoutMs must stay below the timeout, by 1 % of
   * it (at most 100 ms) for the ping's own way to the manager.
   */
  healthCheckTimeoutMs?: number
  /** Called once each time the process turns unhealthy, with the reason. */
  onUnhealthy?: (reason: string) => void
  /** Put the reason in STATUS= while unhealthy, and restore the previous status after. Default true. */
  reportStatus?: boolean
}

/** What the watchdog needs from the notifier. */
export interface WatchdogHost {
  sendPing(value: true | 'trigger'): Promise<boolean>
  reportUnhealthy(reason: string): Promise<unknown>
  reportHealthy(): Promise<unknown>
  onError(error: unknown): void
}

/** The sentinel timer's period is a quarter of the delay threshold, and at most this. */
const SENTINEL_MAX_MS = 1000

type Settled = Required<Omit<WatchdogOptions, 'healthCheck' | 'onUnhealthy'>> &
  Pick<WatchdogOptions, 'healthCheck' | 'onUnhealthy'> & {
    /** After an unhealthy tick (or a failed ping), the next check comes this soon. */
    recheckMs: number
    /** The sentinel's period, or 0 when the event loop is not watched. */
    sentinelMs: number
  }

export class Watchdog {
  /** systemd expects pings (WatchdogSec= set, and WATCHDOG_PID is us). */
  readonly enabled: boolean
  /** The watchdog timeout in ms (WATCHDOG_USEC / 1000), or undefined. */
  readonly intervalMs: number | undefined
  readonly reason: string
  private readonly host: WatchdogHost
  private options: Settled = {
    pingIntervalMs: 0,
    maxEventLoopDelayMs: false,
    healthCheckTimeoutMs: 0,
    reportStatus: true,
    recheckMs: 0,
    sentinelMs: 0,
  }

  private generation = 0
  private active = false
  private unhealthy: string | undefined
  /** The next tick's timer; undefined while a tick runs. */
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  /** Ticks are due at anchor + k × pingIntervalMs; `index` is the last k that ran. */
  private anchor = 0
  private index = 0
  private sentinel: NodeJS.Timeout | undefined
  private sentinelDue = 0
  /** The worst event-loop delay seen since the last check, in ms. */
  private worstDelayMs = 0
  /** A healthCheck call that has not settled yet (maybe of an earlier tick, or before start() was called again). */
  private pending: PendingCheck | undefined

  constructor (settings: WatchdogSettings, host: WatchdogHost) {
    this.enabled = settings.enabled
    this.intervalMs = settings.timeoutMs
    this.reason = settings.reason
    this.host = host
  }

  get running (): boolean {
    return this.active
  }

  /** Why the process is currently considered unhealthy, or undefined. */
  get unhealthyReason (): string | undefined {
    return this.unhealthy
  }

  /**
   * Starts pinging. Returns false (and does nothing) when systemd expects no pings. Calling it again
   * restarts with the new options. Throws SdNotifyError for invalid options.
   */
  start (options: WatchdogOptions = {}): boolean {
    const timeout = this.intervalMs
    const pingIntervalMs = options.pingIntervalMs ?? Math.max(1, Math.floor((timeout ?? 1000) / 2))
    positive('watchdog.pingIntervalMs', pingIntervalMs)
    if (timeout !== undefined && pingIntervalMs >= timeout) {
      throw invalidOption('watchdog.pingIntervalMs', `must be shorter than the watchdog timeout (${timeout} ms)`)
    }
    const maxEventLoopDelayMs = options.maxEventLoopDelayMs ?? Math.max(1, Math.floor((timeout ?? 1000) / 2))
    if (maxEventLoopDelayMs !== false) positive('watchdog.maxEventLoopDelayMs', maxEventLoopDelayMs)
    // What the timeout leaves after one interval. A check that fails (at worst by timing out) is re-checked at
    // once, and the re-check may take as long again before it pings: two pings of a process whose check failed
    // once can be pingIntervalMs + 2 × healthCheckTimeoutMs apart. The default leaves a third of the room spare.
    const room = timeout === undefined ? pingIntervalMs : timeout - pingIntervalMs
    const healthCheckTimeoutMs =
      options.healthCheckTimeoutMs ?? Math.max(1, Math.floor(Math.min(pingIntervalMs / 2, room / 3)))
    positive('watchdog.healthCheckTimeoutMs', healthCheckTimeoutMs)
    // Spare time for the ping itself (timer lateness, the send): 1 % of the timeout, at most 100 ms.
    const marginMs = timeout === undefined ? 0 : Math.max(1, Math.min(100, Math.floor(timeout / 100)))
    if (timeout !== undefined && pingIntervalMs + 2 * healthCheckTimeoutMs + marginMs > timeout) {
      const rule =
        `must be below the watchdog timeout (${timeout} ms) by at least ${marginMs} ms, or a healthy process ` +
        'whose check fails once (a time-out, then a slow re-check) can miss it'
      // Name the option the caller set (the default check timeout fits unless the interval leaves almost nothing).
      const field = `watchdog.${options.healthCheckTimeoutMs === undefined ? 'pingIntervalMs' : 'healthCheckTimeoutMs'}`
      const sum = `watchdog.pingIntervalMs + 2 × watchdog.healthCheckTimeoutMs ${rule}`
      const got = `(got ${pingIntervalMs} + 2 × ${healthCheckTimeoutMs} ms)`
      throw new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `sdnotify: option ${sum} ${got}`, { field, rule: sum })
    }
    for (const name of ['healthCheck', 'onUnhealthy'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') {
        throw invalidOption(`watchdog.${name}`, 'must be a function')
      }
    }
    if (!this.enabled) return false
    this.stop()
    this.unhealthy = undefined // a restart judges health afresh
    // Re-check a quarter interval after a failure, sooner when the timeout leaves less room: one transient
    // failure then costs no deadline.
    const recheckMs = Math.max(1, Math.floor(Math.min(pingIntervalMs / 4, (room - healthCheckTimeoutMs) / 2)))
    const sentinelMs =
      maxEventLoopDelayMs === false ? 0 : Math.max(1, Math.floor(Math.min(maxEventLoopDelayMs / 4, SENTINEL_MAX_MS)))
    const reportStatus = options.reportStatus ?? true
    this.options = {
      ...options,
      ...{ pingIntervalMs, maxEventLoopDelayMs, healthCheckTimeoutMs, reportStatus, recheckMs, sentinelMs },
    }
    const generation = ++this.generation
    this.active = true
    this.ticking = false
    this.worstDelayMs = 0
    this.anchor = performance.now()
    this.index = 0
    if (sentinelMs > 0) this.armSentinel(generation)
    this.arm(generation, this.anchor, 0)
    return true
  }

  /** Stops pinging (systemd will then restart the service after the timeout unless it stops too). */
  stop (): void {
    this.generation++
    this.active = false
    clearTimeout(this.timer)
    this.timer = undefined
    clearTimeout(this.sentinel)
    this.sentinel = undefined
  }

  /** WATCHDOG=1 now, whatever the health. */
  ping (): Promise<boolean> {
    return this.host.sendPing(true)
  }

  /** WATCHDOG=trigger: tell systemd the service is hung, now (systemd ≥ 243). */
  trigger (): Promise<boolean> {
    return this.host.sendPing('trigger')
  }

  /** Arms the next tick: `index` is its place on the fixed-rate schedule, undefined for a re-check. */
  private arm (generation: number, dueAt: number, index: number | undefined): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.tick(generation, dueAt, index) }, Math.max(0, dueAt - performance.now()))
    this.timer.unref() // never keep the host process alive
  }

  private async tick (generation: number, dueAt: number, index: number | undefined): Promise<void> {
    clearTimeout(this.timer) // an early check replaces the armed tick
    this.timer = undefined
    this.ticking = true
    if (index !== undefined) this.index = index
    const startedAt = performance.now()
    let soon = true
    try {
      const reason = await this.check(generation, Math.max(0, startedAt - dueAt))
      if (generation !== this.generation) return
      if (reason !== undefined) {
        if (this.unhealthy === undefined) {
          this.unhealthy = reason
          try {
            this.options.onUnhealthy?.(reason)
          } catch (error) {
            this.report(error)
          }
          if (this.options.reportStatus) await this.host.reportUnhealthy(reason)
        }
        return
      }
      if (this.unhealthy !== undefined) {
        this.unhealthy = undefined
        if (this.options.reportStatus) await this.host.reportHealthy()
        // stop() (notifier.close() at shutdown) or start() meanwhile: this tick is over, no ping.
        if (generation !== this.generation) return
      }
      await this.host.sendPing(true)
      soon = false
    } catch (error) {
      this.report(error) // a failed ping is retried as soon as a failed check
    } finally {
      if (generation === this.generation) {
        this.ticking = false
        this.next(generation, startedAt, soon)
      }
    }
  }

  private next (generation: number, startedAt: number, soon: boolean): void {
    const now = performance.now()
    const { pingIntervalMs, recheckMs } = this.options
    if (soon) {
      this.arm(generation, Math.max(now, startedAt + recheckMs), undefined)
      return
    }
    // Fixed rate: the first due time after now, never one that already ran.
    const slot = (time: number) => Math.floor((time - this.anchor) / pingIntervalMs)
    const index = Math.max(this.index + 1, slot(now) + 1)
    // Due times that came while this tick ran were merged into it (not those missed before it started:
    // a blocked event loop is reported as such).
    const skipped = index - Math.max(this.index + 1, slot(startedAt) + 1)
    if (skipped > 0) {
      const took = Math.round(now - startedAt)
      this.report(
        new SdNotifyError(
          'ERR_SDNOTIFY_TIMEOUT',
          `sdnotify: watchdog: a health check and ping took ${took} ms, ` +
            `longer than pingIntervalMs (${pingIntervalMs} ms): ` +
            `${skipped} tick${skipped === 1 ? ' was' : 's were'} skipped`
        )
      )
    }
    this.arm(generation, this.anchor + index * pingIntervalMs, index)
  }

  /** Errors go to the host's onError; one that throws there must not break the schedule either. */
  private report (error: unknown): void {
    try {
      this.host.onError(error)
    } catch {
      // nowhere left to report it
    }
  }

  private armSentinel (generation: number): void {
    const { sentinelMs } = this.options
    this.sentinelDue = performance.now() + sentinelMs
    this.sentinel = setTimeout(() => this.onSentinel(generation), sentinelMs)
    this.sentinel.unref()
  }

  private onSentinel (generation: number): void {
    if (generation !== this.generation) return
    this.sampleLoopDelay(generation, true)
    if (this.stallMayExceed(this.worstDelayMs) && !this.ticking) {
      // Report a stall when it ends, not at the next tick: check now, off the schedule.
      void this.tick(generation, performance.now(), undefined)
    }
  }

  /**
   * A stall of D ms makes the sentinel at least D − sentinelMs late: record that, once. Called when the
   * sentinel fired, and by each check, which takes an overdue sentinel's lateness itself (its callback has
   * not run yet because the event loop was blocked) so that the next check does not count it again.
   */
  private sampleLoopDelay (generation: number, fired: boolean): void {
    if (this.sentinel === undefined) return
    const now = performance.now()
    if (!fired && now < this.sentinelDue) return
    this.worstDelayMs = Math.max(this.worstDelayMs, now - this.sentinelDue)
    clearTimeout(this.sentinel)
    this.armSentinel(generation)
  }

  /**
   * A sentinel `lateMs` late means a stall of lateMs to lateMs + sentinelMs (it may have been armed up to one
   * period before the stall began): count it when that may exceed the limit, so that no longer stall is missed.
   */
  private stallMayExceed (lateMs: number): boolean {
    const { maxEventLoopDelayMs, sentinelMs } = this.options
    return maxEventLoopDelayMs !== false && lateMs + sentinelMs > maxEventLoopDelayMs
  }

  private async check (generation: number, lateMs: number): Promise<string | undefined> {
    const { maxEventLoopDelayMs } = this.options
    if (maxEventLoopDelayMs !== false) {
      // The worst delay the sentinel saw since the last check; how late this tick itself ran is a lower bound too.
      this.sampleLoopDelay(generation, false)
      const worst = this.worstDelayMs
      this.worstDelayMs = 0
      if (this.stallMayExceed(worst) || lateMs > maxEventLoopDelayMs) {
        const least = Math.round(Math.max(lateMs, worst))
        const most = Math.max(least, Math.round(worst + this.options.sentinelMs))
        return `event loop blocked for ${least} to ${most} ms (limit ${maxEventLoopDelayMs} ms)`
      }
    }
    const { healthCheck, healthCheckTimeoutMs } = this.options
    if (!healthCheck) return undefined
    // One call at a time: a call still pending (a check that hangs) is waited for, not made again and again.
    const fresh = this.pending?.healthCheck !== healthCheck
    const pending = fresh ? this.callHealthCheck(healthCheck) : (this.pending as PendingCheck)
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<string>((resolve) => {
      const giveUp = () => {
        if (fresh) return resolve(`health check timed out after ${healthCheckTimeoutMs} ms`)
        resolve(`health check still pending after ${Math.round(performance.now() - pending.startedAt)} ms`)
      }
      timer = setTimeout(giveUp, healthCheckTimeoutMs)
      timer.unref()
    })
    try {
      return await Promise.race([pending.result, timedOut])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Calls healthCheck; its result is kept as `pending` until it settles. */
  private callHealthCheck (healthCheck: () => unknown): PendingCheck {
    const pending: PendingCheck = { healthCheck, startedAt: performance.now(), result: Promise.resolve(undefined) }
    this.pending = pending // before the call: one that throws synchronously settles (and clears it) at once
    pending.result = (async () => {
      try {
        return (await healthCheck()) === false ? 'health check returned false' : undefined
      } catch (error) {
        return `health check failed: ${errorText(error)}` // one line: it may go to STATUS=
      } finally {
        if (this.pending === pending) this.pending = undefined
      }
    })()
    return pending
  }
}

interface PendingCheck {
  healthCheck: () => unknown
  startedAt: number
  /** The unhealthy reason, or undefined when it passed; never rejects. */
  result: Promise<string | undefined>
}

function positive (option: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidOption(option, `must be a positive number of milliseconds (got ${String(value)})`)
  }
}
