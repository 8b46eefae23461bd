// Small helpers the framework adapters share: turning errors into ERRNO=, addresses into STATUS= text,
// and shutdown signals into a graceful close. Never SIGHUP: systemd's Type=notify-reload uses it to reload.
import { invalidOption } from './errors.js'
import type { Notifier } from './notifier.js'
import { errorText, statusText } from './status-text.js'

/** The errno number of a Node.js system error (`EADDRINUSE` → 98), or `fallback`. */
export function errnoNumber(error: unknown, fallback?: number): number {
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
export function reportListenError(
  notifier: Pick<Notifier, 'sendSync' | 'send' | 'prepare'>,
  error: Error,
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
export function formatAddress(
  address: string | { address: string; family: string; port: number } | null,
  protocol = 'http',
): string {
  if (address === null) return 'an unknown address'
  if (typeof address === 'string') return address
  if (address.family === 'IPv6' || address.family === ('6' as string))
    return `${protocol}://[${address.address}]:${address.port}`
  return `${protocol}://${address.address}:${address.port}`
}

export interface ShutdownSignalOptions {
  /** Default SIGTERM and SIGINT. SIGHUP is refused. */
  signals?: NodeJS.Signals[]
  /** Exit with status 1 when the close takes longer. Default 10 000 ms. */
  timeoutMs?: number
}

/** Validates a `handleSignals` option (`true`, `false` or ShutdownSignalOptions), naming `option`. */
export function validateShutdownSignals(value: unknown, option = 'handleSignals'): void {
  if (value === undefined || typeof value === 'boolean') return
  if (value === null || typeof value !== 'object')
    throw invalidOption(option, 'must be a boolean or { signals, timeoutMs }')
  const { signals, timeoutMs } = value as ShutdownSignalOptions
  if (
    signals !== undefined &&
    (!Array.isArray(signals) || signals.some((s) => typeof s !== 'string' || !s.startsWith('SIG')))
  ) {
    throw invalidOption(`${option}.signals`, 'must be an array of signal names such as SIGTERM')
  }
  if (signals?.includes('SIGHUP'))
    throw invalidOption(`${option}.signals`, 'must not include SIGHUP: systemd sends it to reload (Type=notify-reload)')
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0))
    throw invalidOption(`${option}.timeoutMs`, 'must be a positive number of ms')
}

/**
 * On the first of `signals`, runs `close()`, then exits 0 (1 if it fails or outlasts `timeoutMs`) — but
 * only when no other listener of the host is registered for that signal: the host's own handlers (log flush,
 * tracing export, close-with-grace) were called by the same emit, and the exit is then theirs to make (a
 * failure then only sets process.exitCode = 1). Returns a function that removes the handlers.
 */
export function onShutdownSignal(
  options: true | ShutdownSignalOptions,
  close: (signal: NodeJS.Signals) => Promise<unknown>,
  log: (message: string, error?: unknown) => void = () => {},
): () => void {
  const { signals = ['SIGTERM', 'SIGINT'], timeoutMs = 10_000 } = options === true ? {} : options
  const handler = (signal: NodeJS.Signals) => {
    remove()
    log(`${signal} received: closing`)
    // Ours were removed above: a listener left belongs to the host.
    const exit = (code: number) => {
      if (process.listenerCount(signal) === 0) process.exit(code)
      if (code !== 0) process.exitCode = 1
      log(`${signal} has other listeners: leaving the exit to them`)
    }
    const timer = setTimeout(() => {
      log(`close did not finish within ${timeoutMs} ms`)
      exit(1)
    }, timeoutMs)
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
      },
    )
  }
  const remove = () => signals.forEach((signal) => process.removeListener(signal, handler))
  for (const signal of signals) process.on(signal, handler)
  return remove
}
