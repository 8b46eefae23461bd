// handleSignals for NestJS: a module cannot close the application it belongs to, so this takes the app.
import { type INestApplicationContext, Logger } from '@nestjs/common'
import { errorText, onShutdownSignal, type ShutdownSignalOptions, validateShutdownSignals } from '@sdnotify/core'
import { moduleOptions } from './module-options.js'

/**
 * The shared `handleSignals` option, for a Nest application: on SIGTERM/SIGINT (or `signals`), `app.close(signal)`
 * (Nest's shutdown hooks, and with them STOPPING=1 and the drain), then exit 0 — only when no other listener of
 * the host is registered for that signal; otherwise the exit is left to it. Exit 1 when the close fails or
 * outlasts `timeoutMs` (default: the module's shutdownTimeoutMs + 5 s). Never SIGHUP. Use it instead of
 * `app.enableShutdownHooks()`, not with it. Returns a function that removes the handlers.
 */
export function handleSignals (app: INestApplicationContext, options: true | ShutdownSignalOptions = true): () => void {
  validateShutdownSignals(options)
  const logger = new Logger('SdNotify')
  const log = (message: string, error?: unknown) =>
    error === undefined ? logger.log(message) : logger.error(`${message}: ${errorText(error)}`, (error as Error)?.stack)
  // Without SdNotifyModule (or its shutdownTimeoutMs), the default drain timeout.
  const shutdownTimeoutMs = moduleOptions(app)?.shutdownTimeoutMs ?? 10_000
  const signals = { timeoutMs: shutdownTimeoutMs + 5_000, ...(options === true ? {} : options) }
  // NestApplicationContext.close(signal) hands the signal to the shutdown hooks (not in its type before Nest 12).
  const closable = app as unknown as { close(signal?: string): Promise<void> }
  return onShutdownSignal(signals, (signal) => closable.close(signal), log)
}
