// Lifecycle wiring for Nest. Decorators are applied as functions (bottom of the file), so this package
// needs no particular decorator settings from its consumers or its test runner.
import type { Server } from 'node:net'
import { Inject, Injectable, Logger, Optional } from '@nestjs/common'
import { HttpAdapterHost, ModuleRef } from '@nestjs/core'
import { createNotifier, formatAddress, type HttpDrain, type Notification, type Notifier, reportListenError, trackHttpConnections } from '@sdnotify/core'
import { type SdNotifyModuleOptions, validateOptions } from './options.js'
import { SD_NOTIFY_OPTIONS } from './sd-notify.module-definition.js'

export class SdNotifyService {
  /** The @sdnotify/core notifier, for everything the shortcuts below do not cover. */
  readonly notifier: Notifier
  private readonly options: SdNotifyModuleOptions
  private readonly adapterHost: HttpAdapterHost | undefined
  private readonly moduleRef: ModuleRef | undefined
  private readonly logger = new Logger('SdNotify')
  private extendTimer: NodeJS.Timeout | undefined
  private connections: HttpDrain | undefined

  constructor(options: SdNotifyModuleOptions, adapterHost?: HttpAdapterHost, moduleRef?: ModuleRef) {
    this.options = options ?? {}
    validateOptions(this.options)
    this.adapterHost = adapterHost
    this.moduleRef = moduleRef
    this.notifier = this.options.notifier ?? createNotifier(this.options.notifierOptions)
    // Providers are constructed before any onModuleInit runs: the earliest point to start extending.
    if (this.options.extendStartTimeout) this.extendWhileStarting()
  }

  status(text: string): Promise<boolean> {
    return this.notifier.status(text)
  }
  errno(errno: number, status?: string): Promise<boolean> {
    return this.notifier.errno(errno, status)
  }
  extendTimeout(ms: number): Promise<boolean> {
    return this.notifier.extendTimeout(ms)
  }
  send(notification: Notification): Promise<boolean> {
    return this.notifier.send(notification)
  }

  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.notifier.prepare() // READY is then fast, and a listen error can be sent synchronously
    } catch (error) {
      this.warn('loading the notify transport', error)
    }
    if (this.notifier.enabled && this.options.warnWithoutShutdownHooks !== false && process.listenerCount('SIGTERM') === 0) {
      this.logger.warn(
        "No SIGTERM handler: systemd's stop will kill the app without STOPPING=1 or a graceful shutdown. " +
          "Call app.enableShutdownHooks(['SIGTERM', 'SIGINT']) (not SIGHUP if the unit is Type=notify-reload).",
      )
    }
    const server = this.httpServer()
    const mode = this.options.readyOn ?? 'auto'
    if (mode === 'bootstrap' || (mode === 'auto' && !server)) return this.ready(undefined)
    if (!server) {
      this.logger.warn("readyOn is 'listen' but the application has no HTTP server: sending READY=1 now")
      return this.ready(undefined)
    }
    this.connections = trackHttpConnections(server)
    // Nest's hooks all run before app.listen() binds: READY waits for the server's own 'listening' event.
    const onListening = () => void this.ready(formatAddress(server.address()))
    if (server.listening) return onListening()
    server.once('listening', onListening)
    server.on('error', (error: Error) => {
      if (server.listening) return
      reportListenError(this.notifier, error).catch((sendError: unknown) => this.warn('reporting the listen error', sendError))
    })
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.stopExtending()
    this.notifier.watchdog.stop()
    const status = this.options.stoppingStatus ? this.options.stoppingStatus(signal) : signal ? `Shutting down (${signal})` : 'Shutting down'
    await this.notifier.stopping(status).catch((error: unknown) => this.warn('STOPPING=1', error))
    // Nest closes the server next: let keep-alive connections end as their requests finish, instead of
    // holding the close open until keepAliveTimeout.
    this.connections?.begin((count) => {
      if (count > 0) void this.notifier.status(`${status}: draining ${count} connection${count === 1 ? '' : 's'}`).catch(() => undefined)
    })
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopExtending()
    this.notifier.watchdog.stop()
    if (!this.options.notifier) await this.notifier.close().catch((error: unknown) => this.warn('closing the notifier', error))
  }

  private httpServer(): Server | undefined {
    try {
      const server = this.adapterHost?.httpAdapter?.getHttpServer?.() as Server | undefined
      return server && typeof server.once === 'function' ? server : undefined
    } catch {
      return undefined // createApplicationContext: no HTTP adapter
    }
  }

  private async ready(address: string | undefined): Promise<void> {
    this.stopExtending()
    const status = this.options.readyStatus ? this.options.readyStatus(address) : address ? `Listening on ${address}` : 'Ready'
    try {
      await this.notifier.ready(status)
    } catch (error) {
      this.warn('READY=1', error)
    }
    await this.startWatchdog()
  }

  private async startWatchdog(): Promise<void> {
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
      this.warn('starting the watchdog', error)
    }
  }

  /** HealthCheckService.check(indicators) from the app's TerminusModule: it throws when one is down. */
  private async terminusCheck(indicators: (() => unknown)[]): Promise<() => Promise<unknown>> {
    const terminus = (await import('@nestjs/terminus')) as { HealthCheckService: abstract new (...args: never[]) => { check(i: unknown[]): Promise<unknown> } }
    const health = this.moduleRef?.get(terminus.HealthCheckService, { strict: false })
    if (!health) throw new Error('watchdog.terminus needs TerminusModule imported by the application')
    return () => health.check(indicators)
  }

  private extendWhileStarting(): void {
    const config = typeof this.options.extendStartTimeout === 'object' ? this.options.extendStartTimeout : {}
    const intervalMs = config.intervalMs ?? 5000
    const extendMs = config.extendMs ?? 15_000
    const extend = () => void this.notifier.extendTimeout(extendMs).catch((error: unknown) => this.warn('EXTEND_TIMEOUT_USEC', error))
    extend()
    this.extendTimer = setInterval(extend, intervalMs)
    this.extendTimer.unref()
  }

  private stopExtending(): void {
    if (this.extendTimer) clearInterval(this.extendTimer)
    this.extendTimer = undefined
  }

  private warn(what: string, error: unknown): void {
    this.logger.warn(`${what} failed: ${(error as Error)?.message ?? error}`)
  }
}

Injectable()(SdNotifyService)
Inject(SD_NOTIFY_OPTIONS)(SdNotifyService, undefined, 0)
Optional()(SdNotifyService, undefined, 1)
Inject(HttpAdapterHost)(SdNotifyService, undefined, 1)
Optional()(SdNotifyService, undefined, 2)
Inject(ModuleRef)(SdNotifyService, undefined, 2)
