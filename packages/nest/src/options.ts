import { type Notifier, type NotifierOptions, SdNotifyError, type WatchdogOptions } from '@sdnotify/core'

export interface SdNotifyWatchdogOptions extends WatchdogOptions {
  /**
   * @nestjs/terminus health indicators, e.g. `[() => db.pingCheck('database')]`: the watchdog pings only
   * while `HealthCheckService.check()` of them succeeds. Needs TerminusModule imported by the app.
   */
  terminus?: (() => unknown)[]
}

export interface SdNotifyModuleOptions {
  /** A notifier to use; by default one is created from `notifierOptions`. */
  notifier?: Notifier
  notifierOptions?: NotifierOptions
  /**
   * 'auto' (default): when the HTTP server listens if there is one, else in onApplicationBootstrap.
   * 'listen': when the HTTP server listens. 'bootstrap': in onApplicationBootstrap (application contexts,
   * microservices, workers).
   */
  readyOn?: 'auto' | 'listen' | 'bootstrap'
  /** The STATUS= sent with READY=1; gets the address when there is one. */
  readyStatus?: (address: string | undefined) => string
  /** The STATUS= sent with STOPPING=1; gets the signal. */
  stoppingStatus?: (signal: string | undefined) => string
  /**
   * While bootstrap runs, keep asking systemd for more time (EXTEND_TIMEOUT_USEC) so TimeoutStartSec can
   * stay tight around slow onModuleInit work (migrations). `true`: every 5 s, 15 s more each time.
   */
  extendStartTimeout?: boolean | { intervalMs?: number; extendMs?: number }
  /** Watchdog when the unit sets WatchdogSec= (default true); false to never ping. */
  watchdog?: boolean | SdNotifyWatchdogOptions
  /** Log a warning at start-up when no SIGTERM handler is installed (no enableShutdownHooks()). Default true. */
  warnWithoutShutdownHooks?: boolean
}

const NAMES = ['notifier', 'notifierOptions', 'readyOn', 'readyStatus', 'stoppingStatus', 'extendStartTimeout', 'watchdog', 'warnWithoutShutdownHooks']

function invalid(option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `@sdnotify/nest: option ${option} ${rule}`, { field: option, rule })
}

export function validateOptions(options: SdNotifyModuleOptions): void {
  if (options === null || typeof options !== 'object') throw invalid('options', 'must be an object')
  for (const name of Object.keys(options)) if (!NAMES.includes(name)) throw invalid(name, `is unknown (known: ${NAMES.join(', ')})`)
  if (options.readyOn !== undefined && !['auto', 'listen', 'bootstrap'].includes(options.readyOn)) throw invalid('readyOn', "must be 'auto', 'listen' or 'bootstrap'")
  for (const name of ['readyStatus', 'stoppingStatus'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw invalid(name, 'must be a function')
  }
  const e = options.extendStartTimeout
  if (e !== undefined && typeof e !== 'boolean') {
    if (e === null || typeof e !== 'object') throw invalid('extendStartTimeout', 'must be a boolean or { intervalMs, extendMs }')
    for (const key of ['intervalMs', 'extendMs'] as const) {
      if (e[key] !== undefined && !(typeof e[key] === 'number' && (e[key] as number) > 0)) throw invalid(`extendStartTimeout.${key}`, 'must be a positive number of ms')
    }
    if ((e.extendMs ?? 15_000) <= (e.intervalMs ?? 5000)) throw invalid('extendStartTimeout.extendMs', 'must be longer than intervalMs, or the timeout runs out between extensions')
  }
  const w = options.watchdog
  if (w !== undefined && typeof w !== 'boolean') {
    if (w === null || typeof w !== 'object') throw invalid('watchdog', 'must be a boolean or an object of watchdog options')
    if (w.terminus !== undefined && (!Array.isArray(w.terminus) || w.terminus.some((i) => typeof i !== 'function'))) {
      throw invalid('watchdog.terminus', 'must be an array of health indicator functions')
    }
  }
}
