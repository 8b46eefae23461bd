// @sdnotify/fastify: lifecycle wiring only. Protocol, transports, status text, reload and the drain live in
// @sdnotify/core.
import {
  type AdapterOptions,
  createNotifier,
  fdStoreName,
  formatAddress,
  type Notifier,
  onReloadSignal,
  onShutdownSignal,
  passedListenSocket,
  reportListenError,
  resolveStatus,
  runReload,
  SdNotifyError,
  storeListeningSocket,
  trackHttpConnections,
  validateAdapterOptions,
  type WatchdogOptions,
} from '@sdnotify/core'
import type { FastifyInstance, FastifyListenOptions, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'

const PACKAGE = '@sdnotify/fastify'

export interface SdNotifyWatchdogOptions extends Omit<WatchdogOptions, 'healthCheck'> {
  /** Unhealthy when it throws, rejects, resolves false or takes longer than healthCheckTimeoutMs. */
  healthCheck?: (fastify: FastifyInstance) => unknown
}

/**
 * The options every @sdnotify adapter shares (see the table in the README), plus Fastify's own: `readyOn`,
 * and `healthCheck(fastify)` in the watchdog options. `onReload(fastify)` runs on SIGHUP under systemd.
 */
export interface SdNotifyOptions extends Omit<AdapterOptions<[fastify: FastifyInstance]>, 'watchdog'> {
  /**
   * 'listen' (default): READY=1 in onListen, once every address is bound.
   * 'ready': READY=1 in onReady, for apps that never listen (workers, inject-only).
   */
  readyOn?: 'listen' | 'ready'
  /** Watchdog when the unit sets WatchdogSec= (default true); false to never ping. */
  watchdog?: boolean | SdNotifyWatchdogOptions
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The systemd notifier: `fastify.sdNotify.status('…')`. */
    sdNotify: Notifier
  }
}

// The options Fastify itself reads from register()'s options, which it passes on to the plugin too
// (docs/Reference/Plugins.md, "Plugin Options"; lib/plugin-override.js). It ignores them for
// fastify-plugin plugins, but `register(sdNotify, { logLevel: 'warn' })` must not be an error.
const REGISTER_OPTIONS = ['logLevel', 'logSerializers', 'prefix']

function invalid (field: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `${PACKAGE}: option ${field} ${rule}`, { field, rule })
}

function validate (options: SdNotifyOptions): void {
  validateAdapterOptions(PACKAGE, options, ['readyOn', ...REGISTER_OPTIONS])
  if (options.readyOn !== undefined && options.readyOn !== 'listen' && options.readyOn !== 'ready') {
    throw invalid('readyOn', "must be 'listen' or 'ready'")
  }
  if (options.readyOn === 'ready' && fdStoreName(options.fdStore) !== undefined) {
    throw invalid('fdStore', "needs readyOn: 'listen' (the socket is stored once the server listens, before READY=1)")
  }
}

// eslint-disable-next-line @typescript-eslint/require-await -- Fastify waits for a plugin's promise (no done callback)
const sdNotifyPlugin: FastifyPluginAsync<SdNotifyOptions> = async (fastify, options) => {
  validate(options)
  const notifier = options.notifier ?? createNotifier(options.notifierOptions)
  const ownNotifier = options.notifier === undefined
  const server = fastify.server
  const warn = (what: string, error?: unknown) => fastify.log.warn({ err: error }, `sdnotify: ${what}`)
  const storeName = fdStoreName(options.fdStore)
  fastify.decorate('sdNotify', notifier)
  // https and HTTP/2 over TLS are tls.Server underneath.
  const protocol = typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function' ? 'https' : 'http'

  const sendReady = async () => {
    // fdStore: the listening socket goes to systemd's fd store first, so a restart that follows READY=1 at
    // once already finds it there. Core's warnings (no FileDescriptorStoreMax=…) go to Fastify's logger.
    if (storeName !== undefined) await storeListeningSocket(notifier, server, storeName, (m) => fastify.log.warn(m))
    const listening = options.readyOn === 'ready' ? [] : fastify.addresses()
    const addresses = listening.map((address) => formatAddress(address, protocol))
    const fallback = addresses.length > 0 ? `Listening on ${addresses.join(', ')}` : 'Ready'
    const status = resolveStatus(options.readyStatus, { addresses }, fallback, (error) =>
      fastify.log.error({ err: error }, 'sdnotify: readyStatus failed; sent the default status instead')
    )
    try {
      await notifier.ready(status)
    } catch (error) {
      warn('READY=1 failed', error)
    }
    startWatchdog()
  }

  const startWatchdog = () => {
    if (options.watchdog === false || !notifier.watchdog.enabled) return
    const watchdog: SdNotifyWatchdogOptions = typeof options.watchdog === 'object' ? options.watchdog : {}
    const { healthCheck, ...rest } = watchdog
    try {
      notifier.watchdog.start({ ...rest, ...(healthCheck ? { healthCheck: () => healthCheck(fastify) } : {}) })
    } catch (error) {
      warn('starting the watchdog failed', error)
    }
  }

  // Listen errors (EADDRINUSE, EACCES…): ours runs first and tells systemd (synchronously once the transport
  // is loaded), then Fastify's own listener rejects `listen()`. Attached only while a listen can fail: after
  // 'listening' a server error (EMFILE on accept…) is the app's, and with no listener of its own it is thrown
  // as it would be without us.
  const onListenError = (error: Error) => {
    server.removeListener('listening', onListening)
    const report = reportListenError(notifier, error).catch((sendError: unknown) =>
      warn('reporting the listen error failed', sendError)
    )
    if (server.listenerCount('error') === 0) {
      void report.then(() =>
        process.nextTick(() => {
          throw error // nobody else listens: unhandled, as Node's emit would have it
        })
      )
    }
  }
  const onListening = () => server.removeListener('error', onListenError)

  fastify.addHook('onReady', async () => {
    // Load the transport during start-up: READY is then fast, and a listen error can be sent synchronously.
    try {
      await notifier.prepare()
    } catch (error) {
      warn('loading the notify transport failed', error)
    }
    // onReady runs inside listen() before Fastify binds (and attaches its own 'error' listener).
    if (!server.listening) {
      server.prependOnceListener('error', onListenError)
      server.once('listening', onListening)
    }
    if (options.readyOn === 'ready') await sendReady()
  })
  if (options.readyOn !== 'ready') fastify.addHook('onListen', sendReady)

  // The drain (core): from preClose on, idle keep-alive connections end, a connection with a request in
  // flight ends after its last response (`Connection: close`, never on HTTP/2), HTTP/2 sessions get GOAWAY,
  // and after shutdownTimeoutMs whatever is left is closed.
  const drain = trackHttpConnections(server)
  let stopSignal: NodeJS.Signals | undefined
  let drainTimer: NodeJS.Timeout | undefined
  let closed = false
  const cleanups: (() => void)[] = []
  let removeReload: (() => void) | undefined

  fastify.addHook('preClose', async () => {
    removeReload?.() // no reload while stopping
    const base = resolveStatus(options.stoppingStatus, { signal: stopSignal }, 'Shutting down', (error) =>
      fastify.log.error({ err: error }, 'sdnotify: stoppingStatus failed; sent the default status instead')
    )
    const report = (count: number) => {
      const status = count > 0 ? `${base}: draining ${count} connection${count === 1 ? '' : 's'}` : base
      return notifier.stopping(status).catch((error: unknown) => warn('STOPPING=1 failed', error))
    }
    await report(drain.inFlight)
    drain.begin((count) => {
      if (!closed) void report(count)
    })
    drainTimer = setTimeout(() => drain.destroyAll(), options.shutdownTimeoutMs ?? 10_000)
    drainTimer.unref()
  })

  fastify.addHook('onClose', async () => {
    closed = true
    clearTimeout(drainTimer)
    notifier.watchdog.stop()
    server.removeListener('error', onListenError)
    server.removeListener('listening', onListening)
    removeReload?.()
    for (const cleanup of cleanups.splice(0)) cleanup()
    if (ownNotifier) await notifier.close().catch((error: unknown) => warn('closing the notifier failed', error))
  })

  const onReload = options.onReload
  if (onReload) {
    const log = (message: string, error?: unknown) => fastify.log.error({ err: error }, `sdnotify: ${message}`)
    // Only under systemd: elsewhere SIGHUP keeps its usual meaning (a terminal hang-up).
    removeReload = onReloadSignal(notifier, () => runReload(notifier, () => onReload(fastify), log))
  }

  if (options.handleSignals) {
    const log = (message: string, error?: unknown) =>
      error ? fastify.log.error({ err: error }, `sdnotify: ${message}`) : fastify.log.info(`sdnotify: ${message}`)
    // Room for the drain (shutdownTimeoutMs) before the exit on timeout, unless timeoutMs says otherwise.
    const timeoutMs = (options.shutdownTimeoutMs ?? 10_000) + 5_000
    const signals = { timeoutMs, ...(options.handleSignals === true ? {} : options.handleSignals) }
    const close = (signal: NodeJS.Signals) => {
      stopSignal = signal
      return fastify.close()
    }
    cleanups.push(onShutdownSignal(signals, close, log))
  }
}

/** The plugin: `fastify.register(sdNotify, options)`. Not encapsulated (fastify-plugin). */
export const sdNotify = fp(sdNotifyPlugin, { name: PACKAGE, fastify: '5.x' })
export default sdNotify

export interface SystemdListenOptions {
  /** The fdStore name (or a .socket unit's FileDescriptorName=) of this listener's socket. Default 'http'. */
  name?: string
  /** Where a dropped socket's reason goes, e.g. `(message) => app.log.warn(message)`. Default: a process warning. */
  warn?: (message: string) => void
}

/**
 * Listen options for the socket systemd passed back (from the fd store, with `fdStore`, or a .socket unit),
 * or `options` when none was passed: `await fastify.listen(systemdListenOptions({ port: 3000, host }))`.
 * A stored socket bound elsewhere than `options` asks (the configuration changed) is dropped, removed from
 * the store and the address bound anew (see @sdnotify/core's passedListenSocket for the rules).
 */
export function systemdListenOptions (
  options: FastifyListenOptions = { port: 3000 },
  name?: string | SystemdListenOptions
): FastifyListenOptions {
  const { name: socketName, warn } = typeof name === 'string' ? { name, warn: undefined } : (name ?? {})
  // What Fastify would bind: with neither host nor path, 'localhost' (lib/server.js), not every interface.
  const host = options.host ?? (options.path == null ? 'localhost' : undefined)
  const config = { port: options.port, host, path: options.path ?? undefined }
  const socket = passedListenSocket({ name: socketName, config, warn })
  if (!socket) return options
  // Node's server.listen({ fd }) ignores host and port; a host other than 'localhost' just stops Fastify
  // from trying to bind extra loopback addresses next to the passed socket.
  return { fd: socket.fd, host: '0.0.0.0' } as FastifyListenOptions
}

export type { AdapterOptions, Notifier, ReadyInfo, StoppingInfo } from '@sdnotify/core'
