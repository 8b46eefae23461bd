// Readiness and graceful shutdown for any node:http / https / http2 server.
import type { Server as HttpServer } from 'node:http'
import type { Http2SecureServer, Http2Server } from 'node:http2'
import type { Server as HttpsServer } from 'node:https'
import { createNotifier, formatAddress, type Notifier, onShutdownSignal, reportListenError, trackHttpConnections } from '@sdnotify/core'
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
/** The report (ERRNO, STATUS) of each server's listen error, for listen() to await before its callback. */
export const listenErrorReports = new WeakMap<AnyServer, Promise<void>>()

/** The attachment of a server made by listen() or attach(). */
export function attachmentOf(server: AnyServer): Attachment | undefined {
  return attachments.get(server)
}

/** Wires `server` to systemd: READY=1 once it listens, ERRNO on a listen error, a graceful close(). */
export function attach(server: AnyServer, options: SdNotifyServerOptions = {}): Attachment {
  validateOptions(options, false)
  const existing = attachments.get(server)
  if (existing) return existing
  const notifier = options.notifier ?? createNotifier(options.notifierOptions)
  const warn = (what: string, error: unknown) => process.emitWarning(`@sdnotify/express: ${what}: ${(error as Error)?.message ?? error}`, { code: 'SDNOTIFY_EXPRESS' })
  const protocol = 'cert' in server || (server as { _sharedCreds?: unknown })._sharedCreds ? 'https' : 'http'
  // Loading the transport now makes READY fast and lets a listen error be sent synchronously.
  void notifier.prepare().catch((error: unknown) => warn('loading the notify transport', error))

  const connections = trackHttpConnections(server)
  let closing: Promise<void> | undefined

  const onReady = async () => {
    const address = formatAddress(server.address(), protocol)
    try {
      await notifier.ready(options.readyStatus ? options.readyStatus(address) : `Listening on ${address}`)
    } catch (error) {
      warn('READY=1', error)
    }
    if (options.watchdog !== false && notifier.watchdog.enabled) {
      try {
        notifier.watchdog.start(typeof options.watchdog === 'object' ? options.watchdog : {})
      } catch (error) {
        warn('starting the watchdog', error)
      }
    }
  }
  if (server.listening) void onReady()
  else server.once('listening', () => void onReady())

  server.on('error', (error: Error) => {
    if (server.listening) return
    listenErrorReports.set(server, reportListenError(notifier, error).catch((sendError: unknown) => warn('reporting the listen error', sendError)))
  })

  let removeSignals: (() => void) | undefined

  const drain = async (): Promise<void> => {
    const timeoutMs = options.shutdownTimeoutMs ?? 10_000
    notifier.watchdog.stop()
    const report = (count: number) =>
      notifier.stopping(count > 0 ? `Draining ${count} connection${count === 1 ? '' : 's'}` : 'Shutting down').catch((error: unknown) => warn('STOPPING=1', error))
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
      if (!options.notifier) await notifier.close().catch((error: unknown) => warn('closing the notifier', error))
    }
  }

  const attachment: Attachment = {
    server,
    notifier,
    get connections() {
      return connections.connections
    },
    close: () => (closing ??= drain()),
  }
  attachments.set(server, attachment)
  if (options.handleSignals) removeSignals = onShutdownSignal(options.handleSignals, () => attachment.close(), (message, error) => (error ? warn(message, error) : undefined))
  return attachment
}
