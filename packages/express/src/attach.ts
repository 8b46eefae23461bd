// Readiness, listen errors, reload and graceful shutdown for any node:http / https / http2 server.
import type { Server as HttpServer } from 'node:http'
import type { Http2SecureServer, Http2Server } from 'node:http2'
import type { Server as HttpsServer } from 'node:https'
import {
  createNotifier,
  errorText,
  fdStoreName,
  formatAddress,
  type Notifier,
  onReloadSignal,
  onShutdownSignal,
  reportListenError,
  resolveStatus,
  runReload,
  storeListeningSocket,
  trackHttpConnections,
} from '@sdnotify/core'
import { type SdNotifyServerOptions, validateOptions } from './options.js'

export type AnyServer = HttpServer | HttpsServer | Http2Server | Http2SecureServer

export interface Attachment {
  readonly server: AnyServer
  readonly notifier: Notifier
  /** Connections open now (each may carry requests in flight). */
  readonly connections: number
  /**
   * Graceful stop: STOPPING=1, stop accepting, close idle keep-alive connections, wait for requests in
   * flight (STATUS reports progress) up to `shutdownTimeoutMs`, then close the rest. Idempotent.
   */
  close(): Promise<void>
}

const attachments = new WeakMap<AnyServer, Attachment>()
/** The report (ERRNO, STATUS) of each server's last listen error, for listen() to await before its callback. */
export const listenErrorReports = new WeakMap<AnyServer, Promise<void>>()

/** The attachment of a server made by listen() or attach(). */
export function attachmentOf (server: AnyServer): Attachment | undefined {
  return attachments.get(server)
}

function warn (what: string, error?: unknown): void {
  const message = error === undefined ? what : `${what}: ${errorText(error)}`
  process.emitWarning(`@sdnotify/express: ${message}`, { code: 'SDNOTIFY_EXPRESS' })
}

/** Wires `server` to systemd: READY=1 once it listens, ERRNO on a listen error, a graceful close(). */
export function attach (server: AnyServer, options: SdNotifyServerOptions = {}): Attachment {
  validateOptions(options, false)
  const existing = attachments.get(server)
  if (existing) return existing
  const notifier = options.notifier ?? createNotifier(options.notifierOptions)
  // https.Server and http2's secure server are tls.Server underneath.
  const protocol = typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function' ? 'https' : 'http'
  // Loading the transport now makes READY fast and lets a listen error be sent synchronously.
  void notifier.prepare().catch((error: unknown) => warn('loading the notify transport failed', error))

  const connections = trackHttpConnections(server)
  let closing: Promise<void> | undefined
  const storeName = fdStoreName(options.fdStore)

  const onReady = async () => {
    // fdStore: the listening socket goes to systemd's fd store before READY=1, so a restart that follows at
    // once already finds it there. Core's own warnings (no FileDescriptorStoreMax=…) are process warnings.
    if (storeName !== undefined) {
      await storeListeningSocket(notifier, server, storeName, (message) =>
        process.emitWarning(message, { code: 'SDNOTIFY_FDSTORE' })
      )
    }
    const addresses = [formatAddress(server.address(), protocol)]
    const status = resolveStatus(options.readyStatus, { addresses }, `Listening on ${addresses.join(', ')}`, (error) =>
      warn('readyStatus failed (sent the default status instead)', error)
    )
    try {
      await notifier.ready(status)
    } catch (error) {
      warn('READY=1 failed', error)
    }
    if (options.watchdog !== false && notifier.watchdog.enabled) {
      try {
        notifier.watchdog.start(typeof options.watchdog === 'object' ? options.watchdog : {})
      } catch (error) {
        warn('starting the watchdog failed', error)
      }
    }
  }
  if (server.listening) void onReady()
  else server.once('listening', () => { void onReady() })

  // Runs first (prepended), so systemd hears of a listen error before the app does. It must not make an
  // error "handled": with no 'error' listener of the app's own, the error is thrown as Node's emit would
  // throw it (the process dies, as it would without us) — a listen error once its report is out.
  const onError = (error: Error) => {
    const handled = server.listeners('error').some((listener) => listener !== onError)
    if (server.listening || closing) {
      if (!handled) throw error // e.g. EMFILE on accept: not ours to swallow
      return
    }
    const report = reportListenError(notifier, error).catch((sendError: unknown) =>
      warn('reporting the listen error failed', sendError)
    )
    listenErrorReports.set(server, report)
    if (!handled) {
      void report.then(() =>
        process.nextTick(() => {
          throw error
        })
      )
    }
  }
  server.prependListener('error', onError)

  const reload = options.onReload
  const removeReload = reload
    ? onReloadSignal(notifier, () =>
      runReload(
        notifier,
        () => reload(),
        (message, error) => warn(message, error)
      )
    )
    : undefined
  let removeSignals: (() => void) | undefined

  const drain = async (signal: NodeJS.Signals | undefined): Promise<void> => {
    const timeoutMs = options.shutdownTimeoutMs ?? 10_000
    notifier.watchdog.stop()
    removeReload?.()
    const base = resolveStatus(options.stoppingStatus, { signal }, 'Shutting down', (error) =>
      warn('stoppingStatus failed (sent the default status instead)', error)
    )
    const report = (count: number) => {
      const status = count > 0 ? `${base}: draining ${count} connection${count === 1 ? '' : 's'}` : base
      return notifier.stopping(status).catch((error: unknown) => warn('STOPPING=1 failed', error))
    }
    let last = connections.inFlight
    await report(last)
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    let done = false
    connections.begin((count) => {
      if (!done) void report((last = count))
    })
    const timer = setTimeout(() => connections.destroyAll(), timeoutMs)
    try {
      await closed
      done = true
      if (last !== 0) await report((last = 0)) // the drain is over
    } finally {
      clearTimeout(timer)
      removeSignals?.()
      server.removeListener('error', onError)
      if (!options.notifier) {
        await notifier.close().catch((error: unknown) => warn('closing the notifier failed', error))
      }
    }
  }

  const attachment: Attachment = {
    server,
    notifier,
    get connections () {
      return connections.connections
    },
    close: () => (closing ??= drain(undefined)),
  }
  attachments.set(server, attachment)
  if (options.handleSignals) {
    // Room for the drain (shutdownTimeoutMs) before the exit on timeout, unless timeoutMs says otherwise.
    const signals = {
      timeoutMs: (options.shutdownTimeoutMs ?? 10_000) + 5_000,
      ...(options.handleSignals === true ? {} : options.handleSignals),
    }
    removeSignals = onShutdownSignal(
      signals,
      (signal) => (closing ??= drain(signal)),
      (message, error) => (error ? warn(message, error) : undefined)
    )
  }
  return attachment
}
