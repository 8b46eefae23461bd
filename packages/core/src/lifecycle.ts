// Small helpers the framework adapters share: turning errors into ERRNO=, addresses into STATUS= text,
// and shutdown signals into a graceful close. Never SIGHUP: systemd's Type=notify-reload uses it to reload.
import { invalidOption } from './errors.js'
import type { Notifier } from './notifier.js'
import { errorText, statusText } from './status-text.js'

/** The errno number of a Node.js system error (`EADDRINUSE` → 98), or `fallback`. */
export function errnoNumber (error: unknown, fallback?: number): number {
  const { errno } = process.getBuiltinModule('node:os').constants // not imported: keeps this package's import cheap
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  const value = typeof code === 'string' ? (errno as Record<string, number>)[code] : undefined
  return value ?? fallback ?? errno.EIO
}

/**
 * Tells systemd why listening failed (EADDRINUSE…): ERRNO= and `STATUS=Failed to listen: …`. Sent
 * synchronously when the transport is loaded, so it is out before the app's own error handler can exit
 * the process; otherwise as soon as the transport has loaded. Rejects if it could not be sent.
 */
export function reportListenError (
  notifier: Pick<Notifier, 'sendSync' | 'send' | 'prepare'>,
  error: Error
): Promise<void> {
  // A multi-line message (validation errors, AggregateError) would fail STATUS= validation: fold it.
  const notification = { errno: errnoNumber(error), status: statusText(`Failed to listen: ${errorText(error)}`) }
  try {
    notifier.sendSync(notification)
    return Promise.resolve()
  } catch {
    return notifier
      .prepare()
      .then(() => notifier.send(notification))
      .then(() => undefined)
  }
}

/** `http://127.0.0.1:3000`, `http://[::1]:3000`, or a unix socket path, from server.address(). */
export function formatAddress (
  address: string | { address: string; family: string; port: number } | null,
  protocol = 'http'
): string {
  if (address === null) return 'an unknown address'
  if (typeof address === 'string') return address
  if (address.family === 'IPv6' || address.family === ('6' as string)) {
    return `${protocol}://[${address.address}]:${address.port}`
  }
  return `${protocol}://${address.address}:${address.port}`
}

/** The longest delay a Node.js timer takes (2^31 - 1 ms); a longer one fires after 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * The upper bound of `shutdownTimeoutMs` and `handleSignals.timeoutMs` (exclusive, about 24.8 days): the
 * adapters' exit timer is the drain timeout + 5 s, and must still fit a Node.js timer.
 */
export const MAX_TIMEOUT_MS = MAX_TIMER_MS - 5000

/** The rule a timeout option breaks, for its SdNotifyError. */
export const TIMEOUT_RULE =
  `must be a positive number of ms below ${MAX_TIMEOUT_MS} ` +
  '(2^31 - 1 - 5000: the exit timer adds 5 s and must fit a Node.js timer)'

/** A drain or exit timeout: positive, finite, below MAX_TIMEOUT_MS. */
export function validTimeoutMs (value: unknown): value is number {
  return typeof value === 'number' && value > 0 && value < MAX_TIMEOUT_MS
}

export interface ShutdownSignalOptions {
  /** Default SIGTERM and SIGINT. SIGHUP is refused. */
  signals?: NodeJS.Signals[]
  /** Exit with status 1 when the close takes longer. Default 10 000 ms; below MAX_TIMEOUT_MS (about 24.8 days). */
  timeoutMs?: number
}

/** Validates a `handleSignals` option (`true`, `false` or ShutdownSignalOptions), naming `option`. */
export function validateShutdownSignals (value: unknown, option = 'handleSignals'): void {
  if (value === undefined || typeof value === 'boolean') return
  if (value === null || typeof value !== 'object') {
    throw invalidOption(option, 'must be a boolean or { signals, timeoutMs }')
  }
  const { signals, timeoutMs } = value as ShutdownSignalOptions
  if (
    signals !== undefined &&
    (!Array.isArray(signals) || signals.some((s) => typeof s !== 'string' || !s.startsWith('SIG')))
  ) {
    throw invalidOption(`${option}.signals`, 'must be an array of signal names such as SIGTERM')
  }
  if (signals?.includes('SIGHUP')) {
    throw invalidOption(`${option}.signals`, 'must not include SIGHUP: systemd sends it to reload (Type=notify-reload)')
  }
  if (timeoutMs !== undefined && !validTimeoutMs(timeoutMs)) throw invalidOption(`${option}.timeoutMs`, TIMEOUT_RULE)
}

/**
 * On the first of `signals`, runs `close()`, then exits 0 (1 if it fails or outlasts `timeoutMs`) — but
 * only when no other listener of the host was registered for that signal when it came (`process.on` or
 * `process.once`, before or after ours): the host's own handlers (log flush, tracing export,
 * close-with-grace) were called by the same emit, and the exit is then theirs to make (a failure then only
 * sets process.exitCode = 1). Our handler is prepended, so it runs first. Returns a function that removes it.
 */
export function onShutdownSignal (
  options: true | ShutdownSignalOptions,
  close: (signal: NodeJS.Signals) => Promise<unknown>,
  log: (message: string, error?: unknown) => void = () => {}
): () => void {
  const { signals = ['SIGTERM', 'SIGINT'], timeoutMs = 10_000 } = options === true ? {} : options
  const handler = (signal: NodeJS.Signals) => {
    // Counted now, before anything is removed: ours is prepended, so it runs before the host's listeners and
    // their `process.once` ones are still registered (Node removes a once listener just before calling it).
    const hostListeners = process.listenerCount(signal) - 1
    remove()
    log(`${signal} received: closing`)
    const exit = (code: number) => {
      if (hostListeners === 0) process.exit(code)
      if (code !== 0) process.exitCode = 1
      log(`${signal} has other listeners: leaving the exit to them`)
    }
    // Clamped: an adapter passes its drain timeout + 5 s, and a longer timer would fire after 1 ms.
    const timer = setTimeout(
      () => {
        log(`close did not finish within ${timeoutMs} ms`)
        exit(1)
      },
      Math.min(timeoutMs, MAX_TIMER_MS)
    )
    timer.unref()
    close(signal).then(
      () => {
        clearTimeout(timer)
        exit(0)
      },
      (error: unknown) => {
        clearTimeout(timer)
        log('close failed', error)
        exit(1)
      }
    )
  }
  const unique = [...new Set(signals)]
  const remove = () => unique.forEach((signal) => process.removeListener(signal, handler))
  for (const signal of unique) process.prependListener(signal, handler)
  return remove
}
