// Lifecycle wiring for Nest. Protocol, status text, reload and the drain live in @sdnotify/core.
import type { Server } from 'node:net'
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  Optional,
} from '@nestjs/common'
import { HttpAdapterHost, ModuleRef } from '@nestjs/core'
import {
  createNotifier,
  errorText,
  fdStoreName,
  formatAddress,
  type HttpDrain,
  type Notification,
  type Notifier,
  onReloadSignal,
  reportListenError,
  resolveStatus,
  runReload,
  storeListeningSocket,
  trackHttpConnections,
} from '@sdnotify/core'
import { EXTEND_START_DEFAULTS, type SdNotifyModuleOptions, validateOptions } from './options.js'
import { SD_NOTIFY_OPTIONS } from './sd-notify.module-definition.js'

@Injectable()
export class SdNotifyService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  /** The @sdnotify/core notifier, for everything the shortcuts below do not cover. */
  readonly notifier: Notifier
  private readonly options: SdNotifyModuleOptions
  private readonly logger = new Logger('SdNotify')
  private extendTimer: NodeJS.Timeout | undefined
  private drain: HttpDrain | undefined
  private drainTimer: NodeJS.Timeout | undefined
  private server: Server | undefined
  private removeReload: (() => void) | undefined
  private stopped = false

  constructor (
    @Inject(SD_NOTIFY_OPTIONS) options: SdNotifyModuleOptions,
    @Optional() @Inject(HttpAdapterHost) private readonly adapterHost?: HttpAdapterHost,
    @Optional() @Inject(ModuleRef) private readonly moduleRef?: ModuleRef
  ) {
    this.options = options ?? {}
    validateOptions(this.options)
    this.notifier = this.options.notifier ?? createNotifier(this.options.notifierOptions)
    // Providers are constructed before any onModuleInit runs: the earliest point to start extending.
    if (this.options.extendStartTimeout) this.extendWhileStarting()
  }

  status (text: string): Promise<boolean> {
    return this.notifier.status(text)
  }

  errno (errno: number, status?: string): Promise<boolean> {
    return this.notifier.errno(errno, status)
  }

  extendTimeout (ms: number): Promise<boolean> {
    return this.notifier.extendTimeout(ms)
  }

  send (notification: Notification): Promise<boolean> {
    return this.notifier.send(notification)
  }

  async onApplicationBootstrap (): Promise<void> {
    try {
      await this.notifier.prepare() // READY is then fast, and a listen error can be sent synchronously
    } catch (error) {
      this.warn('loading the notify transport failed', error)
    }
    const noSigterm = process.listenerCount('SIGTERM') === 0
    if (this.notifier.enabled && this.options.warnWithoutShutdownHooks !== false && noSigterm) {
      this.logger.warn(
        "No SIGTERM handler: systemd's stop will kill the app without STOPPING=1 or a graceful shutdown. " +
          "Call app.enableShutdownHooks(['SIGTERM', 'SIGINT']) (not SIGHUP if the unit is Type=notify-reload)."
      )
    }
    this.installReload()
    const server = this.httpServer()
    const mode = this.options.readyOn ?? 'auto'
    const storeName = fdStoreName(this.options.fdStore)
    if (mode === 'bootstrap' || (mode === 'auto' && !server)) {
      if (storeName !== undefined) this.logger.warn('fdStore is set, but the application has no HTTP server to store')
      return this.ready([])
    }
    if (!server) {
      this.logger.warn("readyOn is 'listen' but the application has no HTTP server: sending READY=1 now")
      return this.ready([])
    }
    this.server = server
    this.drain = trackHttpConnections(server)
    // https and HTTP/2 over TLS (platform-fastify) are tls.Server underneath.
    const secure = typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function'
    const protocol = secure ? 'https' : 'http'
    // Nest's hooks all run before app.listen() binds: READY waits for the server's own 'listening' event.
    // fdStore: the listening socket goes to systemd's fd store first (core's warnings to Nest's logger).
    const onListening = async () => {
      const warn = (message: string) => this.logger.warn(message)
      if (storeName !== undefined) await storeListeningSocket(this.notifier, server, storeName, warn)
      await this.ready([formatAddress(server.address(), protocol)])
    }
    if (server.listening) return onListening()
    server.once('listening', () => { void onListening() })
    // Ours runs first and tells systemd (ERRNO, STATUS), then Nest's listener rejects app.listen(). Only until
    // the server listens: a later server error (EMFILE on accept…) is the app's, as it would be without us.
    server.prependOnceListener('error', this.onListenError)
    server.once('listening', this.onListening)
  }

  async beforeApplicationShutdown (signal?: string): Promise<void> {
    this.stopExtending()
    this.removeReload?.()
    this.notifier.watchdog.stop()
    const info = { signal: signal as NodeJS.Signals | undefined }
    const fallback = signal ? `Shutting down (${signal})` : 'Shutting down'
    const base = resolveStatus(this.options.stoppingStatus, info, fallback, (error) =>
      this.error('stoppingStatus failed; sent the default status instead', error)
    )
    const report = (count: number) => {
      const status = count > 0 ? `${base}: draining ${count} connection${count === 1 ? '' : 's'}` : base
      return this.notifier.stopping(status).catch((error: unknown) => this.warn('STOPPING=1 failed', error))
    }
    await report(this.drain?.inFlight ?? 0)
    const drain = this.drain
    if (!drain) return
    // Nest closes the server next: idle keep-alive connections end now, busy ones after their last response
    // (Connection: close), HTTP/2 sessions get GOAWAY; after shutdownTimeoutMs whatever is left is closed.
    drain.begin((count) => {
      if (!this.stopped) void report(count)
    })
    this.drainTimer = setTimeout(() => drain.destroyAll(), this.options.shutdownTimeoutMs ?? 10_000)
    this.drainTimer.unref()
  }

  async onApplicationShutdown (): Promise<void> {
    this.stopped = true
    clearTimeout(this.drainTimer)
    this.stopExtending()
    this.removeReload?.()
    this.notifier.watchdog.stop()
    this.server?.removeListener('error', this.onListenError)
    this.server?.removeListener('listening', this.onListening)
    if (this.options.notifier) return
    await this.notifier.close().catch((error: unknown) => this.warn('closing the notifier failed', error))
  }

  private readonly onListenError = (error: Error) => {
    const server = this.server
    server?.removeListener('listening', this.onListening)
    const report = reportListenError(this.notifier, error).catch((sendError: unknown) =>
      this.warn('reporting the listen error failed', sendError)
    )
    if (server && server.listenerCount('error') === 0) {
      void report.then(() =>
        process.nextTick(() => {
          throw error // nobody else listens: unhandled, as Node's emit would have it
        })
      )
    }
  }

  private readonly onListening = () => this.server?.removeListener('error', this.onListenError)

  private installReload (): void {
    const onReload = this.options.onReload
    if (!onReload || this.removeReload) return
    // Only under systemd (notifier.enabled): elsewhere SIGHUP keeps its usual meaning.
    if (this.notifier.enabled && process.listenerCount('SIGHUP') > 0) {
      this.logger.warn(
        'onReload is set but SIGHUP already has a listener: if it is enableShutdownHooks() without arguments, ' +
          "systemd's reload (SIGHUP) will also shut the app down. Use app.enableShutdownHooks(['SIGTERM', 'SIGINT'])."
      )
    }
    const log = (message: string, error?: unknown) => this.error(message, error)
    this.removeReload = onReloadSignal(this.notifier, () => runReload(this.notifier, () => onReload(), log))
  }

  private httpServer (): Server | undefined {
    try {
      const server = this.adapterHost?.httpAdapter?.getHttpServer?.() as Server | undefined
      return server && typeof server.once === 'function' ? server : undefined
    } catch {
      return undefined // createApplicationContext: no HTTP adapter
    }
  }

  private async ready (addresses: string[]): Promise<void> {
    this.stopExtending()
    const fallback = addresses.length > 0 ? `Listening on ${addresses.join(', ')}` : 'Ready'
    const status = resolveStatus(this.options.readyStatus, { addresses }, fallback, (error) =>
      this.error('readyStatus failed; sent the default status instead', error)
    )
    try {
      await this.notifier.ready(status)
    } catch (error) {
      this.warn('READY=1 failed', error)
    }
    await this.startWatchdog()
  }

  private async startWatchdog (): Promise<void> {
    const option = this.options.watchdog
    if (option === false || !this.notifier.watchdog.enabled) return
    const { terminus, ...watchdog } = typeof option === 'object' ? option : { terminus: undefined }
    try {
      if (terminus && terminus.length > 0) {
        const check = await this.terminusCheck(terminus)
        const own = watchdog.healthCheck
        watchdog.healthCheck = async () => (await check()) !== false && (own ? own() : true)
      }
      this.notifier.watchdog.start(watchdog)
    } catch (error) {
      this.warn('starting the watchdog failed', error)
    }
  }

  /** HealthCheckService.check(indicators) from the app's TerminusModule: it throws when one is down. */
  private async terminusCheck (indicators: (() => unknown)[]): Promise<() => Promise<unknown>> {
    type Health = { check(i: unknown[]): Promise<unknown> }
    type HealthCheckService = abstract new (...args: never[]) => Health
    const terminus = (await import('@nestjs/terminus')) as { HealthCheckService: HealthCheckService }
    let health: Health | undefined
    try {
      health = this.moduleRef?.get(terminus.HealthCheckService, { strict: false })
    } catch {
      // ModuleRef.get() throws for a provider no module has (Nest's UnknownElementException): the reason below.
    }
    if (!health) throw new Error('watchdog.terminus needs TerminusModule imported by the application')
    return () => health.check(indicators)
  }

  /**
   * EXTEND_TIMEOUT_USEC every intervalMs until READY, never past maxMs after construction: each request asks
   * for at most the time left, so a hung start-up ends in systemd's start timeout (sd_notify(3): the
   * timeout fires when no new message comes within the extension, once TimeoutStartSec= has passed).
   */
  private extendWhileStarting (): void {
    const config = typeof this.options.extendStartTimeout === 'object' ? this.options.extendStartTimeout : {}
    const intervalMs = config.intervalMs ?? EXTEND_START_DEFAULTS.intervalMs
    const extendMs = config.extendMs ?? EXTEND_START_DEFAULTS.extendMs
    const maxMs = config.maxMs ?? EXTEND_START_DEFAULTS.maxMs
    const started = performance.now()
    const extend = () => {
      const left = Math.floor(maxMs - (performance.now() - started))
      if (left <= 0) {
        this.stopExtending()
        this.logger.warn(`start-up still running after extendStartTimeout.maxMs (${maxMs} ms): no more extensions`)
        return
      }
      const sending = this.notifier.extendTimeout(Math.min(extendMs, left))
      void sending.catch((error: unknown) => this.warn('EXTEND_TIMEOUT_USEC failed', error))
    }
    extend()
    this.extendTimer = setInterval(extend, intervalMs)
    this.extendTimer.unref()
  }

  private stopExtending (): void {
    if (this.extendTimer) clearInterval(this.extendTimer)
    this.extendTimer = undefined
  }

  private warn (what: string, error: unknown): void {
    this.logger.warn(`${what}: ${errorText(error)}`)
  }

  private error (what: string, error: unknown): void {
    this.logger.error(`${what}: ${errorText(error)}`, (error as Error | undefined)?.stack)
  }
}
