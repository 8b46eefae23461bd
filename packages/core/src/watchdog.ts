// sd_watchdog_enabled(3) and a health-gated pinger: pings at half the timeout on an unref'd timer,
// re-armed after each tick (so ticks never pile up), and stops pinging while the process is unhealthy,
// so that systemd restarts it (Result=watchdog).
import type { IntervalHistogram } from 'node:perf_hooks'
import { invalidOption } from './errors.js'
import type { SystemdVariables } from './environment.js'

export interface WatchdogSettings {
  enabled: boolean
  /** The watchdog timeout (WatchdogSec=) in ms, when enabled. */
  timeoutMs: number | undefined
  /** Why it is (not) enabled. */
  reason: string
}

export function watchdogSettings(vars: SystemdVariables, pid = process.pid): WatchdogSettings {
  const usec = vars.WATCHDOG_USEC
  if (usec === undefined) return { enabled: false, timeoutMs: undefined, reason: 'WATCHDOG_USEC is not set (no WatchdogSec= in the unit)' }
  if (!/^\d+$/.test(usec) || BigInt(usec) === 0n) {
    return { enabled: false, timeoutMs: undefined, reason: `WATCHDOG_USEC=${JSON.stringify(usec)} is not a positive number of µs` }
  }
  if (vars.WATCHDOG_PID !== undefined && vars.WATCHDOG_PID !== String(pid)) {
    return { enabled: false, timeoutMs: undefined, reason: `WATCHDOG_PID=${vars.WATCHDOG_PID} is another process (we are ${pid})` }
  }
  const timeoutMs = Math.max(1, Math.floor(Math.min(Number(usec), Number.MAX_SAFE_INTEGER) / 1000))
  return { enabled: true, timeoutMs, reason: `WatchdogSec=${timeoutMs / 1000}s` }
}

export interface WatchdogOptions {
  /** How often to ping, in ms. Default: half the watchdog timeout. */
  pingIntervalMs?: number
  /**
   * Unhealthy when the event loop was delayed longer than this since the last tick (perf_hooks'
   * monitorEventLoopDelay). Default: half the watchdog timeout. `false` disables the check.
   */
  maxEventLoopDelayMs?: number | false
  /** Your own check. Unhealthy when it throws, rejects, resolves `false` or takes too long. */
  healthCheck?: () => unknown
  /** How long healthCheck may take, in ms. Default: half the ping interval. */
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

export class Watchdog {
  /** systemd expects pings (WatchdogSec= set, and WATCHDOG_PID is us). */
  readonly enabled: boolean
  /** The watchdog timeout in ms (WATCHDOG_USEC / 1000), or undefined. */
  readonly intervalMs: number | undefined
  readonly reason: string
  private readonly host: WatchdogHost
  private timer: NodeJS.Timeout | undefined
  private histogram: IntervalHistogram | undefined
  private options: Required<Omit<WatchdogOptions, 'healthCheck' | 'onUnhealthy'>> & Pick<WatchdogOptions, 'healthCheck' | 'onUnhealthy'> = {
    pingIntervalMs: 0,
    maxEventLoopDelayMs: false,
    healthCheckTimeoutMs: 0,
    reportStatus: true,
  }
  private generation = 0
  private unhealthy: string | undefined
  /** When the pending tick should run: how late it runs is itself a measure of event-loop delay. */
  private dueAt = 0

  constructor(settings: WatchdogSettings, host: WatchdogHost) {
    this.enabled = settings.enabled
    this.intervalMs = settings.timeoutMs
    this.reason = settings.reason
    this.host = host
  }

  get running(): boolean {
    return this.timer !== undefined
  }

  /** Why the process is currently considered unhealthy, or undefined. */
  get unhealthyReason(): string | undefined {
    return this.unhealthy
  }

  /**
   * Starts pinging. Returns false (and does nothing) when systemd expects no pings. Calling it again
   * restarts with the new options. Throws SdNotifyError for invalid options.
   */
  start(options: WatchdogOptions = {}): boolean {
    const timeout = this.intervalMs ?? 1000
    const pingIntervalMs = options.pingIntervalMs ?? Math.max(1, Math.floor(timeout / 2))
    positive('watchdog.pingIntervalMs', pingIntervalMs)
    if (this.intervalMs !== undefined && pingIntervalMs >= this.intervalMs) {
      throw invalidOption('watchdog.pingIntervalMs', `must be shorter than the watchdog timeout (${this.intervalMs} ms)`)
    }
    const maxEventLoopDelayMs = options.maxEventLoopDelayMs ?? Math.max(1, Math.floor(timeout / 2))
    if (maxEventLoopDelayMs !== false) positive('watchdog.maxEventLoopDelayMs', maxEventLoopDelayMs)
    const healthCheckTimeoutMs = options.healthCheckTimeoutMs ?? Math.max(1, Math.floor(pingIntervalMs / 2))
    positive('watchdog.healthCheckTimeoutMs', healthCheckTimeoutMs)
    if (options.healthCheck !== undefined && typeof options.healthCheck !== 'function') throw invalidOption('watchdog.healthCheck', 'must be a function')
    if (options.onUnhealthy !== undefined && typeof options.onUnhealthy !== 'function') throw invalidOption('watchdog.onUnhealthy', 'must be a function')
    if (!this.enabled) return false
    this.stop()
    this.unhealthy = undefined // a restart judges health afresh
    this.options = { ...options, pingIntervalMs, maxEventLoopDelayMs, healthCheckTimeoutMs, reportStatus: options.reportStatus ?? true }
    const generation = ++this.generation
    if (maxEventLoopDelayMs !== false) {
      // perf_hooks is loaded here, not at import: it costs milliseconds that a process without a watchdog
      // should not pay. Until it is ready (the first tick) the delay is simply not checked.
      void import('node:perf_hooks').then(({ monitorEventLoopDelay }) => {
        if (generation !== this.generation) return
        this.histogram = monitorEventLoopDelay({ resolution: Math.min(20, Math.max(1, Math.floor(maxEventLoopDelayMs / 4))) })
        this.histogram.enable()
      })
    }
    this.schedule(generation, 0)
    return true
  }

  /** Stops pinging (systemd will then restart the service after the timeout unless it stops too). */
  stop(): void {
    this.generation++
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.histogram?.disable()
    this.histogram = undefined
  }

  /** WATCHDOG=1 now, whatever the health. */
  ping(): Promise<boolean> {
    return this.host.sendPing(true)
  }

  /** WATCHDOG=trigger: tell systemd the service is hung, now (systemd ≥ 243). */
  trigger(): Promise<boolean> {
    return this.host.sendPing('trigger')
  }

  private schedule(generation: number, delay: number): void {
    this.dueAt = performance.now() + delay
    this.timer = setTimeout(() => void this.tick(generation), delay)
    this.timer.unref() // never keep the host process alive
  }

  private async tick(generation: number): Promise<void> {
    const lateMs = performance.now() - this.dueAt
    try {
      const reason = await this.check(lateMs)
      if (generation !== this.generation) return
      if (reason !== undefined) {
        if (this.unhealthy === undefined) {
          this.unhealthy = reason
          try {
            this.options.onUnhealthy?.(reason)
          } catch (error) {
            this.host.onError(error)
          }
          if (this.options.reportStatus) await this.host.reportUnhealthy(reason)
        }
        return
      }
      if (this.unhealthy !== undefined) {
        this.unhealthy = undefined
        if (this.options.reportStatus) await this.host.reportHealthy()
      }
      await this.host.sendPing(true)
    } catch (error) {
      this.host.onError(error)
    } finally {
      if (generation === this.generation) this.schedule(generation, this.options.pingIntervalMs)
    }
  }

  private async check(lateMs: number): Promise<string | undefined> {
    if (this.options.maxEventLoopDelayMs !== false) {
      // The worst delay seen by perf_hooks since the last tick, or how late this tick itself ran.
      const delayMs = Math.max(lateMs, (this.histogram?.max ?? 0) / 1e6)
      this.histogram?.reset()
      if (delayMs > this.options.maxEventLoopDelayMs) {
        return `event loop delay ${Math.round(delayMs)} ms > ${this.options.maxEventLoopDelayMs} ms`
      }
    }
    const { healthCheck, healthCheckTimeoutMs } = this.options
    if (!healthCheck) return undefined
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`health check timed out after ${healthCheckTimeoutMs} ms`), healthCheckTimeoutMs)
      timer.unref()
    })
    const checked = (async () => {
      try {
        return (await healthCheck()) === false ? 'health check returned false' : undefined
      } catch (error) {
        return `health check failed: ${(error as Error)?.message ?? String(error)}`
      }
    })()
    try {
      return await Promise.race([checked, timedOut])
    } finally {
      clearTimeout(timer)
    }
  }
}

function positive(option: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidOption(option, `must be a positive number of milliseconds (got ${String(value)})`)
  }
}
