import {
  type AdapterOptions,
  fdStoreName,
  SdNotifyError,
  validateAdapterOptions,
  type WatchdogOptions,
} from '@sdnotify/core'

const PACKAGE = '@sdnotify/nest'

export interface SdNotifyWatchdogOptions extends WatchdogOptions {
  /**
   * @nestjs/terminus health indicators, e.g. `[() => db.pingCheck('database')]`: the watchdog pings only
   * while `HealthCheckService.check()` of them succeeds. Needs TerminusModule imported by the app.
   */
  terminus?: (() => unknown)[]
}

export interface ExtendStartTimeoutOptions {
  /** How often to ask for more time. Default 5 000 ms. */
  intervalMs?: number
  /** How much more time each request asks for (EXTEND_TIMEOUT_USEC). Default 15 000 ms; longer than intervalMs. */
  extendMs?: number
  /**
   * Never ask for time beyond this long after the module was constructed: a start-up that hangs then ends in
   * systemd's start timeout (Result=timeout) instead of "activating" forever. Default 300 000 ms (5 minutes).
   */
  maxMs?: number
}

export const EXTEND_START_DEFAULTS: Required<ExtendStartTimeoutOptions> = {
  intervalMs: 5000,
  extendMs: 15_000,
  maxMs: 300_000,
}

/**
 * The options every @sdnotify adapter shares (see the table in the README), plus Nest's own: `readyOn`,
 * `extendStartTimeout`, `warnWithoutShutdownHooks` and `watchdog.terminus`.
 */
export interface SdNotifyModuleOptions extends Omit<AdapterOptions, 'watchdog' | 'handleSignals'> {
  /**
   * 'auto' (default): when the HTTP server listens if there is one, else in onApplicationBootstrap.
   * 'listen': when the HTTP server listens. 'bootstrap': in onApplicationBootstrap (application contexts,
   * microservices, workers).
   */
  readyOn?: 'auto' | 'listen' | 'bootstrap'
  /**
   * While bootstrap runs, keep asking systemd for more time (EXTEND_TIMEOUT_USEC) so TimeoutStartSec can
   * stay tight around slow onModuleInit work (migrations), up to `maxMs`. `true`: the defaults
   * (every 5 s, 15 s more each time, for at most 5 minutes).
   */
  extendStartTimeout?: boolean | ExtendStartTimeoutOptions
  /** Watchdog when the unit sets WatchdogSec= (default true); false to never ping. */
  watchdog?: boolean | SdNotifyWatchdogOptions
  /** Log a warning at start-up when no SIGTERM handler is installed (no enableShutdownHooks()). Default true. */
  warnWithoutShutdownHooks?: boolean
  /**
   * Only `false` here: a Nest module cannot close the application it belongs to. Call `handleSignals(app)`
   * (exported by this package) instead, or Nest's `app.enableShutdownHooks(['SIGTERM', 'SIGINT'])`.
   */
  handleSignals?: false
}

const NEST_OPTIONS = ['readyOn', 'extendStartTimeout', 'warnWithoutShutdownHooks', 'watchdog.terminus']

function invalid (option: string, rule: string): SdNotifyError {
  const message = `${PACKAGE}: option ${option} ${rule}`
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', message, { field: option, rule })
}

const positiveMs = (value: unknown) => typeof value === 'number' && value > 0 && value < 2 ** 31

export function validateOptions (options: SdNotifyModuleOptions): void {
  if (options === null || typeof options !== 'object') throw invalid('options', 'must be an object')
  validateAdapterOptions(PACKAGE, options, NEST_OPTIONS)
  if ((options.handleSignals as unknown) !== undefined && (options.handleSignals as unknown) !== false) {
    const instead = "call handleSignals(app) from @sdnotify/nest, or app.enableShutdownHooks(['SIGTERM', 'SIGINT'])"
    throw invalid('handleSignals', `is not a module option (a module cannot close its application): ${instead}`)
  }
  if (options.readyOn !== undefined && !['auto', 'listen', 'bootstrap'].includes(options.readyOn)) {
    throw invalid('readyOn', "must be 'auto', 'listen' or 'bootstrap'")
  }
  if (options.readyOn === 'bootstrap' && fdStoreName(options.fdStore) !== undefined) {
    throw invalid('fdStore', "needs an HTTP server: readyOn 'auto' or 'listen' (the socket is stored before READY=1)")
  }
  const e = options.extendStartTimeout
  if (e !== undefined && typeof e !== 'boolean') {
    if (e === null || typeof e !== 'object') {
      throw invalid('extendStartTimeout', 'must be a boolean or { intervalMs, extendMs, maxMs }')
    }
    for (const key of Object.keys(e)) {
      if (!(key in EXTEND_START_DEFAULTS)) {
        throw invalid(`extendStartTimeout.${key}`, 'is unknown (known: intervalMs, extendMs, maxMs)')
      }
    }
    for (const key of ['intervalMs', 'extendMs', 'maxMs'] as const) {
      if (e[key] !== undefined && !positiveMs(e[key])) {
        throw invalid(`extendStartTimeout.${key}`, 'must be a positive number of ms (below 2^31)')
      }
    }
    if ((e.extendMs ?? EXTEND_START_DEFAULTS.extendMs) <= (e.intervalMs ?? EXTEND_START_DEFAULTS.intervalMs)) {
      const rule = 'must be longer than intervalMs, or the timeout runs out between extensions'
      throw invalid('extendStartTimeout.extendMs', rule)
    }
  }
  if (options.warnWithoutShutdownHooks !== undefined && typeof options.warnWithoutShutdownHooks !== 'boolean') {
    throw invalid('warnWithoutShutdownHooks', 'must be a boolean')
  }
  const w = options.watchdog
  if (w !== undefined && typeof w === 'object' && w !== null && w.terminus !== undefined) {
    if (!Array.isArray(w.terminus) || w.terminus.some((i) => typeof i !== 'function')) {
      throw invalid('watchdog.terminus', 'must be an array of health indicator functions')
    }
  }
}
