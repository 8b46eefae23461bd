// The one vocabulary of the framework adapters (@sdnotify/express, fastify, nest): their shared options,
// how those are validated, how a status option becomes STATUS= text, and the reload sequence of
// Type=notify-reload. Adapters add only what their framework needs on top.
import { invalidOption, SdNotifyError } from './errors.js'
import {
  DEFAULT_SOCKET_NAME,
  fdStoreName,
  findPassedSocket,
  type FindPassedSocketOptions,
  serverFd,
  storeServerSocket,
} from './fd-store.js'
import {
  errnoNumber,
  type ShutdownSignalOptions,
  TIMEOUT_RULE,
  validateShutdownSignals,
  validTimeoutMs,
} from './lifecycle.js'
import { listenFds } from './listen-fds.js'
import type { Notifier, NotifierOptions } from './notifier.js'
import type { SocketAddress } from './socket-address.js'
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
  /**
   * Zero-downtime restarts: once listening (before READY=1), hand the listening socket to systemd's fd store
   * (FDSTORE=1, FDNAME=`name`, default 'http'); the next start listens on the socket systemd passes back.
   * The unit needs FileDescriptorStoreMax= (one per stored listener). Default false.
   */
  fdStore?: boolean | { name?: string }
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
  'fdStore',
])

function optionError (packageName: string, option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `${packageName}: option ${option} ${rule}`, {
    field: option,
    rule,
  })
}

const WATCHDOG_OPTION_NAMES: readonly string[] = [
  'pingIntervalMs',
  'maxEventLoopDelayMs',
  'healthCheck',
  'healthCheckTimeoutMs',
  'onUnhealthy',
  'reportStatus',
]

const positiveMs = (value: unknown) => typeof value === 'number' && value > 0 && value < 2 ** 31

/**
 * Checks a `watchdog` option (`true`, `false` or WatchdogOptions) when it is given, before the watchdog
 * starts: the types, and no unknown keys (`extraKeys` are the caller's own, not checked here). What depends
 * on WatchdogSec= (pingIntervalMs below it…) is checked by watchdog.start(). Throws SdNotifyError
 * ERR_SDNOTIFY_INVALID_OPTION naming `<option>.<key>`.
 */
export function validateWatchdogOptions (option: string, value: unknown, extraKeys: readonly string[] = []): void {
  if (value === undefined || typeof value === 'boolean') return
  if (value === null || typeof value !== 'object') {
    throw invalidOption(option, 'must be a boolean or an object of watchdog options')
  }
  const known = [...WATCHDOG_OPTION_NAMES, ...extraKeys]
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw invalidOption(`${option}.${key}`, `is unknown (known: ${known.join(', ')})`)
  }
  const o = value as Record<string, unknown>
  for (const key of ['pingIntervalMs', 'healthCheckTimeoutMs']) {
    if (o[key] !== undefined && !positiveMs(o[key])) {
      throw invalidOption(`${option}.${key}`, 'must be a positive number of ms below 2^31')
    }
  }
  const delay = o.maxEventLoopDelayMs
  if (delay !== undefined && delay !== false && !positiveMs(delay)) {
    throw invalidOption(`${option}.maxEventLoopDelayMs`, 'must be false or a positive number of ms below 2^31')
  }
  for (const key of ['healthCheck', 'onUnhealthy']) {
    if (o[key] !== undefined && typeof o[key] !== 'function') {
      throw invalidOption(`${option}.${key}`, 'must be a function')
    }
  }
  if (o.reportStatus !== undefined && typeof o.reportStatus !== 'boolean') {
    throw invalidOption(`${option}.reportStatus`, 'must be a boolean')
  }
}

/**
 * Checks the shared options and rejects unknown keys (`extraNames` are the adapter's own, which it checks
 * itself). Throws SdNotifyError ERR_SDNOTIFY_INVALID_OPTION: `<packageName>: option <name> <rule>`.
 */
export function validateAdapterOptions (
  packageName: string,
  options: unknown,
  extraNames: readonly string[] = []
): void {
  if (options === undefined) return
  if (options === null || typeof options !== 'object') throw optionError(packageName, 'options', 'must be an object')
  // 'watchdog.<key>' in extraNames: a key the adapter adds to the watchdog options (it checks its value itself).
  const own = extraNames.filter((name) => !name.includes('.'))
  const watchdogKeys = [
    ...extraNames.filter((name) => name.startsWith('watchdog.')).map((name) => name.slice('watchdog.'.length)),
  ]
  const known = [...ADAPTER_OPTION_NAMES, ...own]
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw optionError(packageName, name, `is unknown (known: ${known.join(', ')})`)
  }
  const o = options as Record<string, unknown>
  const fail = (name: string, rule: string) => {
    throw optionError(packageName, name, rule)
  }
  const { notifier, notifierOptions, shutdownTimeoutMs } = o
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
    if (value !== undefined && typeof value !== 'string' && typeof value !== 'function') {
      fail(name, 'must be a string or a function')
    }
  }
  try {
    validateWatchdogOptions('watchdog', o.watchdog, watchdogKeys)
  } catch (error) {
    const { field = 'watchdog', rule = (error as Error).message } = error as SdNotifyError
    fail(field, rule)
  }
  if (shutdownTimeoutMs !== undefined && !validTimeoutMs(shutdownTimeoutMs)) fail('shutdownTimeoutMs', TIMEOUT_RULE)
  if (o.onReload !== undefined && typeof o.onReload !== 'function') fail('onReload', 'must be a function')
  try {
    validateShutdownSignals(o.handleSignals)
  } catch (error) {
    const { field = 'handleSignals', rule = (error as Error).message } = error as SdNotifyError
    fail(field, rule)
  }
  try {
    fdStoreName(o.fdStore)
  } catch (error) {
    const { field = 'fdStore', rule = (error as Error).message } = error as SdNotifyError
    fail(field, rule)
  }
}

/**
 * The listening socket systemd passed back for an adapter's listener (`systemdListenOptions`, Express's
 * `listen`, Nest's `systemdListen`), or undefined: then bind `config`.
 * - A `name` other than the default 'http': only the socket of that name (an fdStore name, or a .socket
 *   unit's FileDescriptorName=), compared with `config`.
 * - No name (or 'http'): when a socket named 'http' was passed, it is the fd store's, bound from this
 *   configuration on an earlier start: used only if it still matches `config`. Otherwise the first socket
 *   passed (a .socket unit's, whatever its FileDescriptorName=), used as passed: its ListenStream= is the
 *   configuration, as socket activation always worked.
 * A stale socket is closed, removed from the store with the next store under its name, and logged (`warn`).
 */
export function passedListenSocket (options: FindPassedSocketOptions): PassedListenSocket | undefined {
  if (options.name !== undefined && options.name !== DEFAULT_SOCKET_NAME) return findPassedSocket(options)
  const env = options.env === undefined ? {} : { env: options.env }
  if (listenFds({ ...env, name: DEFAULT_SOCKET_NAME }).length > 0) {
    // In fd-store mode: no fall-back to another name, which would be another listener's stored socket.
    return findPassedSocket({ ...options, name: DEFAULT_SOCKET_NAME })
  }
  try {
    return findPassedSocket({ ...options, name: undefined, config: undefined })
  } catch (error) {
    // koffi (an optional dependency) reads where a descriptor is bound. Socket activation never needed it:
    // without it, the first socket passed, as before the fd store.
    const [first] = listenFds(env)
    if (first === undefined) throw error
    return { fd: first.fd, name: first.name, address: undefined }
  }
}

/** A socket passedListenSocket found; `address` is unknown only when koffi, which reads it, is not installed. */
export interface PassedListenSocket {
  fd: number
  name: string
  address: SocketAddress | undefined
}

/**
 * An adapter's `fdStore` step, once its server listens and before READY=1: stores the listening socket
 * under `name` (storeServerSocket). Never rejects: a failure (no koffi for SCM_RIGHTS…) is logged through
 * `warn` and the app keeps serving (restarts then refuse connections as without the store). A socket a
 * .socket unit passed (under another name) is not stored: that unit keeps it across restarts already.
 */
export async function storeListeningSocket (
  notifier: Pick<Notifier, 'enabled' | 'storeFds' | 'removeFds'>,
  server: unknown,
  name: string,
  warn: (message: string) => void
): Promise<boolean> {
  try {
    if (!notifier.enabled) return false
    const fd = serverFd(server)
    const passed = fd === undefined ? undefined : listenFds().find((entry) => entry.fd === fd)
    if (passed !== undefined && passed.name !== name) return false
    return await storeServerSocket(notifier, server, name, { warn })
  } catch (error) {
    try {
      const why = errorText(error)
      warn(`sdnotify: fdStore: storing the listening socket failed (${why}); restarts will refuse connections`)
    } catch {
      /* a failing logger must not crash the app */
    }
    return false
  }
}

/**
 * The STATUS= text of a `readyStatus`/`stoppingStatus` option: the string, or the string the callback
 * returns, made a valid single line by statusText(). Status callbacks are synchronous: one that throws,
 * returns a promise or returns anything but a string gives `fallback`, and the problem goes to `onError`
 * once (a promise's outcome is ignored, and its rejection is caught: never an unhandledRejection). It never
 * prevents the notification.
 */
export function resolveStatus<Info> (
  option: string | ((info: Info) => string) | undefined,
  info: Info,
  fallback: string,
  onError: (error: unknown) => void
): string {
  if (typeof option !== 'function') return statusText(option ?? fallback)
  let problem: unknown
  try {
    const result: unknown = option(info)
    if (typeof result === 'string') return statusText(result)
    problem = notAString(result)
  } catch (error) {
    problem = error
  }
  try {
    onError(problem)
  } catch {
    /* the report is best effort: the notification matters more */
  }
  return statusText(fallback)
}

/** The error for a status callback's non-string result; a promise's rejection is caught here. */
function notAString (result: unknown): SdNotifyError {
  let thenable = false
  try {
    thenable = typeof (result as { then?: unknown } | null | undefined)?.then === 'function'
    // Handled now, whatever it does later: a rejection would otherwise crash the host (unhandledRejection).
    if (thenable) Promise.resolve(result).catch(() => undefined)
  } catch {
    /* a throwing `then` getter: not a promise we can wait on anyway */
  }
  let rule: string
  if (thenable) rule = 'returned a promise: it must return a string, synchronously (the promise is ignored)'
  else if (result === null || result === undefined) rule = `returned ${String(result)}, not a string`
  else {
    const type = typeof result
    rule = `returned ${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}, not a string`
  }
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `sdnotify: a status callback ${rule}`, { rule })
}

interface ReloadState {
  running: Promise<void> | undefined
  /** A SIGHUP came while a reload ran: run once more after it. */
  again: boolean
  /** The stop began (the remover of onReloadSignal ran): no READY=1 or STATUS= any more, no new run. */
  stopped: boolean
  /** The `Reload failed: …` status we sent, and the status it replaced. */
  failed: { status: string; previous: string | undefined } | undefined
}
const reloads = new WeakMap<object, ReloadState>()

function reloadState (notifier: object): ReloadState {
  let state = reloads.get(notifier)
  if (!state) reloads.set(notifier, (state = { running: undefined, again: false, stopped: false, failed: undefined }))
  return state
}

/**
 * Type=notify-reload (systemd ≥ 253): RELOADING=1 (with MONOTONIC_USEC, which the encoder adds), the
 * handler, then READY=1: `systemctl reload` returns only then. A handler that throws or rejects still gets
 * READY=1 (the reload job must end), with ERRNO= and `STATUS=Reload failed: …`, and is logged; the next
 * successful reload restores the status and clears ERRNO. Reloads asked for while one runs are coalesced
 * into one more run after it. Once the stop began (onReloadSignal's remover ran), a reload still running
 * sends nothing more (no READY=1 or STATUS= after STOPPING=1; a failure is still logged) and none starts.
 * Never rejects.
 */
export function runReload (
  notifier: Pick<Notifier, 'send' | 'lastStatus'>,
  onReload: () => unknown,
  log: (message: string, error?: unknown) => void = () => {}
): Promise<void> {
  const state = reloadState(notifier)
  if (state.stopped) return Promise.resolve()
  if (state.running) {
    state.again = true
    return state.running
  }
  const current = state
  const loop = async () => {
    do {
      current.again = false
      await reloadOnce(notifier, onReload, log, current)
    } while (current.again && !current.stopped)
  }
  current.running = loop().finally(() => (current.running = undefined))
  return current.running
}

async function reloadOnce (
  notifier: Pick<Notifier, 'send' | 'lastStatus'>,
  onReload: () => unknown,
  log: (message: string, error?: unknown) => void,
  state: ReloadState
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
  if (failure) safeLog(log, 'reload failed', failure.error)
  // systemd is stopping the unit (STOPPING=1 sent or on its way): a READY=1 now would contradict it.
  if (state.stopped) return
  const { failed } = state
  const shown = notifier.lastStatus
  if (failure) {
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
    })
  )
}

function safeLog (log: (message: string, error?: unknown) => void, message: string, error: unknown): void {
  try {
    log(message, error)
  } catch {
    /* a failing logger must not stop the reload sequence */
  }
}

/**
 * Runs `reload` on SIGHUP, only under systemd (`notifier.enabled`): elsewhere SIGHUP keeps its usual
 * meaning (a terminal hang-up ends the process). Returns the remover, or undefined when nothing was installed.
 * The remover is the adapter's first step of a stop: it also ends runReload() for this notifier (a reload
 * still running sends no READY=1 after the STOPPING=1 that follows), until onReloadSignal installs again.
 */
export function onReloadSignal (notifier: Pick<Notifier, 'enabled'>, reload: () => unknown): (() => void) | undefined {
  if (!notifier.enabled) return undefined
  const state = reloadState(notifier)
  state.stopped = false
  const handler = () => {
    try {
      void Promise.resolve(reload()).catch(() => undefined)
    } catch {
      /* runReload never throws; a custom reload that does must not crash the process from a signal */
    }
  }
  process.on('SIGHUP', handler)
  return () => {
    state.stopped = true
    process.removeListener('SIGHUP', handler)
  }
}
