// @sdnotify/fastify: lifecycle wiring only. Protocol, transports and watchdog health live in @sdnotify/core.
import {
  createNotifier,
  errnoNumber,
  reportListenError,
  formatAddress,
  listenFds,
  type Notifier,
  type NotifierOptions,
  onShutdownSignal,
  SdNotifyError,
  type ShutdownSignalOptions,
  validateShutdownSignals,
  type WatchdogOptions,
} from '@sdnotify/core'
import type { FastifyInstance, FastifyListenOptions, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'

export interface SdNotifyWatchdogOptions extends Omit<WatchdogOptions, 'healthCheck'> {
  /** Unhealthy when it throws, rejects, resolves false or takes longer than healthCheckTimeoutMs. */
  healthCheck?: (fastify: FastifyInstance) => unknown
}

export interface SdNotifyOptions {
  /** A notifier to use (e.g. shared with other code); by default one is created from `notifierOptions`. */
  notifier?: Notifier
  notifierOptions?: NotifierOptions
  /**
   * 'listen' (default): READY=1 in onListen, once every address is bound.
   * 'ready': READY=1 in onReady, for apps that never listen (workers, inject-only).
   */
  readyOn?: 'listen' | 'ready'
  /** The STATUS= sent with READY=1. Default: `Listening on <addresses>` (or `Ready`). */
  readyStatus?: (addresses: string[]) => string
  /** The STATUS= sent with STOPPING=1. Default: `Shutting down`. */
  stoppingStatus?: string
  /** Watchdog when the unit sets WatchdogSec= (default true); false to never ping. */
  watchdog?: boolean | SdNotifyWatchdogOptions
  /**
   * Turn these signals into `fastify.close()` (with a timeout), then exit. Default off: use close-with-grace
   * or your own handler. `true` means SIGTERM and SIGINT. Never SIGHUP: systemd uses it to reload.
   */
  handleSignals?: boolean | ShutdownSignalOptions
  /**
   * Reload on SIGHUP (Type=notify-reload, or ExecReload=kill -HUP $MAINPID): RELOADING=1, the handler,
   * then READY=1. If the handler fails, READY=1 comes with ERRNO and a STATUS saying why, and the
   * server keeps serving.
   */
  onReload?: (fastify: FastifyInstance) => unknown
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The systemd notifier: `fastify.sdNotify.status('…')`. */
    sdNotify: Notifier
  }
}

const OPTION_NAMES = ['notifier', 'notifierOptions', 'readyOn', 'readyStatus', 'stoppingStatus', 'watchdog', 'handleSignals', 'onReload']

function invalid(option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `@sdnotify/fastify: option ${option} ${rule}`, { field: option, rule })
}

function validate(options: SdNotifyOptions): void {
  for (const name of Object.keys(options)) if (!OPTION_NAMES.includes(name)) throw invalid(name, `is unknown (known: ${OPTION_NAMES.join(', ')})`)
  if (options.readyOn !== undefined && options.readyOn !== 'listen' && options.readyOn !== 'ready') throw invalid('readyOn', "must be 'listen' or 'ready'")
  for (const name of ['readyStatus', 'onReload'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw invalid(name, 'must be a function')
  }
  if (options.stoppingStatus !== undefined && typeof options.stoppingStatus !== 'string') throw invalid('stoppingStatus', 'must be a string')
  const w = options.watchdog
  if (w !== undefined && typeof w !== 'boolean' && (w === null || typeof w !== 'object')) throw invalid('watchdog', 'must be a boolean or an object of watchdog options')
  validateShutdownSignals(options.handleSignals)
}

const sdNotifyPlugin: FastifyPluginAsync<SdNotifyOptions> = async (fastify, options) => {
  validate(options)
  const notifier = options.notifier ?? createNotifier(options.notifierOptions)
  const ownNotifier = options.notifier === undefined
  const log = (error: unknown, what: string) => fastify.log.warn({ err: error }, `sdnotify: ${what} failed`)
  fastify.decorate('sdNotify', notifier)

  const sendReady = async () => {
    const addresses = fastify.addresses().map((address) => formatAddress(address))
    const status = options.readyStatus ? options.readyStatus(addresses) : addresses.length > 0 ? `Listening on ${addresses.join(', ')}` : 'Ready'
    try {
      await notifier.ready(status)
    } catch (error) {
      log(error, 'READY=1')
    }
    startWatchdog()
  }

  const startWatchdog = () => {
    if (options.watchdog === false || !notifier.watchdog.enabled) return
    const { healthCheck, ...rest } = typeof options.watchdog === 'object' ? options.watchdog : ({} as SdNotifyWatchdogOptions)
    try {
      notifier.watchdog.start({ ...rest, ...(healthCheck ? { healthCheck: () => healthCheck(fastify) } : {}) })
    } catch (error) {
      log(error, 'starting the watchdog')
    }
  }

  // A failed listen (EADDRINUSE…) is reported synchronously, before the app's catch can exit the process.
  const onServerError = (error: Error) => {
    if (fastify.server.listening) return
    reportListenError(notifier, error).catch((sendError: unknown) => log(sendError, 'reporting the listen error'))
  }
  fastify.server.on('error', onServerError)

  fastify.addHook('onReady', async () => {
    // Load the transport during start-up: READY is then fast, and a listen error can be sent synchronously.
    try {
      await notifier.prepare()
    } catch (error) {
      log(error, 'loading the notify transport')
    }
    if (options.readyOn === 'ready') await sendReady()
  })
  if (options.readyOn !== 'ready') fastify.addHook('onListen', sendReady)

  // Responses finished while closing end their keep-alive connection: otherwise a connection that turns idle
  // after close() began stays open until keepAliveTimeout (72 s in Fastify) and the drain never ends.
  let closing = false
  fastify.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })

  fastify.addHook('preClose', async () => {
    closing = true
    try {
      await notifier.stopping(options.stoppingStatus ?? 'Shutting down')
    } catch (error) {
      log(error, 'STOPPING=1')
    }
  })

  const cleanups: (() => void)[] = []
  fastify.addHook('onClose', async () => {
    notifier.watchdog.stop()
    fastify.server.removeListener('error', onServerError)
    for (const cleanup of cleanups) cleanup()
    if (ownNotifier) await notifier.close().catch((error: unknown) => log(error, 'closing the notifier'))
  })

  if (options.onReload) {
    const onReload = options.onReload
    let reloading = false
    const reload = async () => {
      if (reloading) return // systemd waits for READY=1 before sending another SIGHUP
      reloading = true
      const previous = notifier.lastStatus
      try {
        await notifier.reloading('Reloading')
        try {
          await onReload(fastify)
          await notifier.ready(previous ?? 'Reloaded')
        } catch (error) {
          fastify.log.error({ err: error }, 'sdnotify: reload failed; still serving the previous configuration')
          await notifier.send({ ready: true, errno: errnoNumber(error), status: `Reload failed: ${(error as Error)?.message ?? error}` })
        }
      } catch (error) {
        log(error, 'reload notification')
      } finally {
        reloading = false
      }
    }
    const onSighup = () => void reload()
    process.on('SIGHUP', onSighup)
    cleanups.push(() => process.removeListener('SIGHUP', onSighup))
  }

  if (options.handleSignals) {
    const log = (message: string, error?: unknown) => (error ? fastify.log.error({ err: error }, `sdnotify: ${message}`) : fastify.log.info(`sdnotify: ${message}`))
    cleanups.push(onShutdownSignal(options.handleSignals, () => fastify.close(), log))
  }
}

/** The plugin: `fastify.register(sdNotify, options)`. Not encapsulated (fastify-plugin). */
export const sdNotify = fp(sdNotifyPlugin, { name: '@sdnotify/fastify', fastify: '5.x' })
export default sdNotify

/**
 * Listen options for a socket passed by systemd socket activation, or `fallback` when none was passed:
 * `await fastify.listen(systemdListenOptions({ port: 3000 }))`.
 */
export function systemdListenOptions(fallback: FastifyListenOptions = { port: 3000 }, name?: string): FastifyListenOptions {
  const [socket] = listenFds(name === undefined ? {} : { name })
  if (!socket) return fallback
  // Node's server.listen({ fd }) ignores host and port; a host other than 'localhost' just stops Fastify
  // from trying to bind extra loopback addresses next to the passed socket.
  return { fd: socket.fd, host: '0.0.0.0' } as FastifyListenOptions
}

export type { Notifier } from '@sdnotify/core'
