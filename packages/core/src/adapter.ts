// The one vocabulary of the framework adapters (@sdnotify/express, fastify, nest): their shared options,
// how those are validated, how a status option becomes STATUS= text, and the reload sequence of
// Type=notify-reload. Adapters add only what their framework needs on top.
import { SdNotifyError } from './errors.js'
import { errnoNumber, type ShutdownSignalOptions, validateShutdownSignals } from './lifecycle.js'
import type { Notifier, NotifierOptions } from './notifier.js'
import { errorText, statusText } from './status-text.js'
import type { WatchdogOptions } from './watchdog.js'

/** What a `readyStatus` callback gets. */
export interface ReadyInfo {
  /**
   * Where the app listens, formatted by formatAddress(): 'http://127.0.0.1:3000', 'https://[::1]:443',
   * '/run/app.sock'. Empty when it does not listen (e.g. a Nest application context).
   */
  addresses: string[]
}

/** What a `stoppingStatus` callback gets. */
export interface StoppingInfo {
  /** The signal that started the stop, when a signal did. */
  signal: NodeJS.Signals | undefined
}

/** The options every adapter takes, with the same names and meaning. */
export interface AdapterOptions<ReloadArgs extends unknown[] = []> {
  /** A notifier to use; by default one is created from `notifierOptions` (and closed with the app). */
  notifier?: Notifier
  notifierOptions?: NotifierOptions
  /** The STATUS= sent with READY=1. */
  readyStatus?: string | ((info: ReadyInfo) => string)
  /** The STATUS= sent with STOPPING=1. */
  stoppingStatus?: string | ((info: StoppingInfo) => string)
  /** Ping the watchdog when the unit sets WatchdogSec= (default true); false never pings. */
  watchdog?: boolean | WatchdogOptions
  /** How long a graceful stop waits for requests in flight before closing their connections. Default 10 000 ms. */
  shutdownTimeoutMs?: number
  /** SIGTERM/SIGINT (or `signals`) → a graceful close. Never SIGHUP (systemd reloads with it). Default off. */
  handleSignals?: boolean | ShutdownSignalOptions
  /** Type=notify-reload: runs on SIGHUP under systemd, between RELOADING=1 and READY=1. */
  onReload?: (...args: ReloadArgs) => unknown
}

export const ADAPTER_OPTION_NAMES: readonly string[] = Object.freeze([
  'notifier',
  'notifierOptions',
  'readyStatus',
  'stoppingStatus',
  'watchdog',
  'shutdownTimeoutMs',
  'handleSignals',
  'onReload',
])

function optionError(packageName: string, option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `${packageName}: option ${option} ${rule}`, {
    field: option,
    rule,
  })
}

/**
 * Checks the shared options and rejects unknown keys (`extraNames` are the adapter's own, which it checks
 * itself). Throws SdNotifyError ERR_SDNOTIFY_INVALID_OPTION: `<packageName>: option <name> <rule>`.
 */
export function validateAdapterOptions(
  packageName: string,
  options: unknown,
  extraNames: readonly string[] = [],
): void {
  if (options === undefined) return
  if (options === null || typeof options !== 'object') throw optionError(packageName, 'options', 'must be an object')
  const known = [...ADAPTER_OPTION_NAMES, ...extraNames]
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw optionError(packageName, name, `is unknown (known: ${known.join(', ')})`)
  }
  const o = options as Record<string, unknown>
  const fail = (name: string, rule: string) => {
    throw optionError(packageName, name, rule)
  }
  const { notifier, notifierOptions, watchdog, shutdownTimeoutMs } = o
  if (
    notifier !== undefined &&
    !(typeof notifier === 'object' && notifier !== null && typeof (notifier as Notifier).send === 'function')
  ) {
    fail('notifier', 'must be a Notifier (from createNotifier)')
  }
  if (notifierOptions !== undefined && (notifierOptions === null || typeof notifierOptions !== 'object')) {
    fail('notifierOptions', 'must be an object of createNotifier options')
  }
  for (const name of ['readyStatus', 'stoppingStatus']) {
    const value = o[name]
    if (value !== undefined && typeof value !== 'string' && typeof value !== 'function')
      fail(name, 'must be a string or a function')
  }
  if (watchdog !== undefined && typeof watchdog !== 'boolean' && (watchdog === null || typeof watchdog !== 'object')) {
    fail('watchdog', 'must be a boolean or an object of watchdog options')
  }
  if (
    shutdownTimeoutMs !== undefined &&
    !(typeof shutdownTimeoutMs === 'number' && shutdownTimeoutMs > 0 && shutdownTimeoutMs < 2 ** 31)
  ) {
    fail('shutdownTimeoutMs', 'must be a positive number of ms (below 2^31)')
  }
  if (o.onReload !== undefined && typeof o.onReload !== 'function') fail('onReload', 'must be a function')
  try {
    validateShutdownSignals(o.handleSignals)
  } catch (error) {
    const { field = 'handleSignals', rule = (error as Error).message } = error as SdNotifyError
    fail(field, rule)
  }
}

/**
 * The STATUS= text of a `readyStatus`/`stoppingStatus` option: the string, or what the callback returns
 * (a non-string result as String(result)), made a valid single line by statusText(). A callback that
 * throws gives `fallback`, and its error goes to `onError`: it never prevents the notification.
 */
export function resolveStatus<Info>(
  option: string | ((info: Info) => string) | undefined,
  info: Info,
  fallback: string,
  onError: (error: unknown) => void,
): string {
  if (typeof option !== 'function') return statusText(option ?? fallback)
  try {
    return statusText(option(info))
  } catch (error) {
    try {
      onError(error)
    } catch {
      /* the report is best effort: the notification matters more */
    }
    return statusText(fallback)
  }
}

interface ReloadState {
  running: Promise<void> | undefined
  /** A SIGHUP came while a reload ran: run once more after it. */
  again: boolean
  /** The `Reload failed: …` status we sent, and the status it replaced. */
  failed: { status: string; previous: string | undefined } | undefined
}
const reloads = new WeakMap<object, ReloadState>()

/**
 * Type=notify-reload (systemd ≥ 253): RELOADING=1 (with MONOTONIC_USEC, which the encoder adds), the
 * handler, then READY=1: `systemctl reload` returns only then. A handler that throws or rejects still gets
 * READY=1 (the reload job must end), with ERRNO= and `STATUS=Reload failed: …`, and is logged; the next
 * successful reload restores the status and clears ERRNO. Reloads asked for while one runs are coalesced
 * into one more run after it. Never rejects.
 */
export function runReload(
  notifier: Pick<Notifier, 'send' | 'lastStatus'>,
  onReload: () => unknown,
  log: (message: string, error?: unknown) => void = () => {},
): Promise<void> {
  let state = reloads.get(notifier)
  if (!state) reloads.set(notifier, (state = { running: undefined, again: false, failed: undefined }))
  if (state.running) {
    state.again = true
    return state.running
  }
  const current = state
  const loop = async () => {
    do {
      current.again = false
      await reloadOnce(notifier, onReload, log, current)
    } while (current.again)
  }
  current.running = loop().finally(() => (current.running = undefined))
  return current.running
}

async function reloadOnce(
  notifier: Pick<Notifier, 'send' | 'lastStatus'>,
  onReload: () => unknown,
  log: (message: string, error?: unknown) => void,
  state: ReloadState,
): Promise<void> {
  const quietly = (what: string, sending: Promise<unknown>) =>
    sending.catch((error: unknown) => safeLog(log, `${what} failed`, error))
  await quietly('RELOADING=1', notifier.send({ reloading: true }))
  let failure: { error: unknown } | undefined
  try {
    await onReload()
  } catch (error) {
    failure = { error }
  }
  const { failed } = state
  const shown = notifier.lastStatus
  if (failure) {
    safeLog(log, 'reload failed', failure.error)
    const status = statusText(`Reload failed: ${errorText(failure.error)}`)
    state.failed = { status, previous: failed && shown === failed.status ? failed.previous : shown }
    await quietly('READY=1', notifier.send({ ready: true, errno: errnoNumber(failure.error), status }))
    return
  }
  state.failed = undefined
  // STATUS= stays as it was unless our failure text is still shown; ERRNO=0 clears the failure's StatusErrno.
  const restore = failed && shown === failed.status ? failed.previous : shown
  await quietly(
    'READY=1',
    notifier.send({
      ready: true,
      ...(restore === undefined ? {} : { status: restore }),
      ...(failed ? { errno: 0 } : {}),
    }),
  )
}

function safeLog(log: (message: string, error?: unknown) => void, message: string, error: unknown): void {
  try {
    log(message, error)
  } catch {
    /* a failing logger must not stop the reload sequence */
  }
}

/**
 * Runs `reload` on SIGHUP, only under systemd (`notifier.enabled`): elsewhere SIGHUP keeps its usual
 * meaning (a terminal hang-up ends the process). Returns the remover, or undefined when nothing was installed.
 */
export function onReloadSignal(notifier: Pick<Notifier, 'enabled'>, reload: () => unknown): (() => void) | undefined {
  if (!notifier.enabled) return undefined
  const handler = () => {
    try {
      void Promise.resolve(reload()).catch(() => undefined)
    } catch {
      /* runReload never throws; a custom reload that does must not crash the process from a signal */
    }
  }
  process.on('SIGHUP', handler)
  return () => void process.removeListener('SIGHUP', handler)
}
