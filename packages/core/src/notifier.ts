import { type NotifyAddress, parseNotifySocket } from './address.js'
import { invalidField, invalidOption, SdNotifyError } from './errors.js'
import { type Environment, LISTEN_VARIABLES, NOTIFY_VARIABLES, systemdVariables, unsetVariables, WATCHDOG_VARIABLES } from './environment.js'
import { notifyFd } from './listen-fds.js'
import { encodeNotification, type Notification } from './protocol.js'
import { createTransport, findExecutable, planTransports, type SelectionContext, TRANSPORT_ORDER, type TransportPlan } from './select-transport.js'
import type { Transport, TransportName } from './transports/transport.js'
import { Watchdog, watchdogSettings } from './watchdog.js'

export interface NotifierOptions {
  /** 'auto' (default) picks fd, koffi, unix-dgram, then exec; a name forces that transport. */
  transport?: 'auto' | TransportName
  /** Not under systemd (no NOTIFY_SOCKET): reject every call instead of resolving false. */
  strict?: boolean
  /**
   * Remove NOTIFY_SOCKET, WATCHDOG_USEC/PID and LISTEN_* from process.env once read, so child processes
   * do not inherit them (sd_notify(3)'s unset_environment). listenFds() still sees them.
   */
  unsetEnvironment?: boolean
  /** How long one send may keep retrying while the manager's queue is full. Default 5000 ms. */
  sendTimeoutMs?: number
  /** Path or name of systemd-notify for the exec transport. Default: found on PATH. */
  systemdNotify?: string
  /** Where warnings go (e.g. the exec fallback). Default: process.emitWarning. */
  onWarning?: (message: string, code: string) => void
  /** Where errors of background work (watchdog pings) go. Default: a warning. */
  onError?: (error: unknown) => void
  /** The environment to read; process.env by default (for tests). */
  env?: Environment
}

export interface Description {
  /** Running under a service manager that listens for notifications. */
  enabled: boolean
  notifySocket: string | undefined
  /** The transport in use (or that will be tried first). */
  transport: TransportName | undefined
  /** Every transport, in the order they are tried, and why each can or cannot be used. */
  transports: TransportPlan[]
  watchdog: { enabled: boolean; intervalMs: number | undefined; reason: string; running: boolean }
  /** What to put in the unit file, in [Service]. */
  unitFile: string[]
}

export interface Notifier {
  /** True when notifications go somewhere; false makes every call a no-op resolving false. */
  readonly enabled: boolean
  /** The transport's name: the one in use, or the one that will be tried first. */
  readonly transport: TransportName | undefined
  readonly watchdog: Watchdog
  /** The last STATUS= sent. */
  readonly lastStatus: string | undefined
  ready(status?: string): Promise<boolean>
  reloading(status?: string): Promise<boolean>
  stopping(status?: string): Promise<boolean>
  status(text: string): Promise<boolean>
  errno(errno: number, status?: string): Promise<boolean>
  extendTimeout(ms: number): Promise<boolean>
  mainPid(pid: number): Promise<boolean>
  send(notification: Notification): Promise<boolean>
  /**
   * Sends at once, synchronously, ahead of anything queued: for last words before the process exits
   * (a failed listen, an 'exit' handler). The transport must be loaded: call prepare() at start-up.
   * Returns false when not under systemd; throws SdNotifyError otherwise.
   */
  sendSync(notification: Notification): boolean
  /** Chooses and loads the transport now, so the first notification (or sendSync) is fast. */
  prepare(): Promise<boolean>
  barrier(timeoutMs?: number): Promise<boolean>
  storeFds(fds: readonly number[], name: string, options?: { poll?: boolean }): Promise<boolean>
  removeFds(name: string): Promise<boolean>
  describe(): Description
  close(): Promise<void>
}

let warnedExec = false

class SdNotifier implements Notifier {
  readonly enabled: boolean
  readonly watchdog: Watchdog
  private readonly strict: boolean
  private readonly sendTimeoutMs: number
  private readonly forced: TransportName | undefined
  private readonly ctx: SelectionContext
  private readonly plans: TransportPlan[]
  private readonly warn: (message: string, code: string) => void
  private readonly reportError: (error: unknown) => void
  private active: Transport | undefined
  private fdPassing: Transport | undefined
  private tail: Promise<unknown> = Promise.resolve()
  /** Operations queued and not finished: the fast path may only send when this is 0 (order). */
  private pending = 0
  private closed = false
  private status_: string | undefined

  constructor(options: NotifierOptions) {
    validateOptions(options)
    const env = options.env ?? process.env
    const vars = systemdVariables(env)
    let address: NotifyAddress | undefined
    let addressProblem: string | undefined
    if (vars.NOTIFY_SOCKET !== undefined) {
      try {
        address = parseNotifySocket(vars.NOTIFY_SOCKET)
      } catch (error) {
        addressProblem = (error as Error).message
      }
    }
    let fd: number | undefined
    try {
      fd = notifyFd(env)
    } catch (error) {
      addressProblem ??= (error as Error).message
    }
    this.ctx = {
      notifySocket: vars.NOTIFY_SOCKET,
      address,
      addressProblem,
      notifyFd: fd,
      systemdNotify: vars.NOTIFY_SOCKET === undefined ? undefined : findExecutable(options.systemdNotify ?? 'systemd-notify', env.PATH),
    }
    this.plans = planTransports(this.ctx)
    this.forced = options.transport === 'auto' ? undefined : options.transport
    this.enabled = vars.NOTIFY_SOCKET !== undefined || fd !== undefined
    this.strict = options.strict ?? false
    this.sendTimeoutMs = options.sendTimeoutMs ?? 5000
    this.warn = options.onWarning ?? ((message, code) => process.emitWarning(message, { code }))
    this.reportError = options.onError ?? ((error) => this.warn(`sdnotify: ${(error as Error)?.message ?? String(error)}`, 'SDNOTIFY_ERROR'))
    this.watchdog = new Watchdog(watchdogSettings(vars), {
      sendPing: (value) => this.send({ watchdog: value }),
      reportUnhealthy: (reason) => this.sendQuietly({ status: `Unhealthy, watchdog paused: ${reason}` }, false),
      reportHealthy: () => (this.status_ === undefined ? Promise.resolve() : this.sendQuietly({ status: this.status_ }, true)),
      onError: this.reportError,
    })
    if (options.unsetEnvironment) unsetVariables(env, [...NOTIFY_VARIABLES, ...WATCHDOG_VARIABLES, ...LISTEN_VARIABLES])
  }

  get transport(): TransportName | undefined {
    if (this.active) return this.active.name
    if (!this.enabled) return undefined
    return this.forced ?? this.plans.find((plan) => plan.usable)?.name
  }

  get lastStatus(): string | undefined {
    return this.status_
  }

  ready(status?: string) {
    return this.send(status === undefined ? { ready: true } : { ready: true, status })
  }
  reloading(status?: string) {
    return this.send(status === undefined ? { reloading: true } : { reloading: true, status })
  }
  stopping(status?: string) {
    return this.send(status === undefined ? { stopping: true } : { stopping: true, status })
  }
  status(text: string) {
    return this.send({ status: text })
  }
  errno(errno: number, status?: string) {
    return this.send(status === undefined ? { errno } : { errno, status })
  }
  extendTimeout(ms: number) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      return Promise.reject(invalidField('EXTEND_TIMEOUT_USEC', `needs a positive number of milliseconds (got ${String(ms)})`))
    }
    return this.send({ extendTimeoutUsec: Math.ceil(ms * 1000) })
  }
  mainPid(pid: number) {
    return this.send({ mainPid: pid })
  }

  send(notification: Notification): Promise<boolean> {
    return this.submit(notification, [])
  }

  sendSync(notification: Notification): boolean {
    const message = encodeNotification(notification)
    if (this.closed) throw new SdNotifyError('ERR_SDNOTIFY_CLOSED', 'sdnotify: the notifier was closed')
    if (!this.enabled) return this.disabled()
    const transport = this.active
    if (!transport?.sendSync) {
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', 'sdnotify: sendSync() needs a loaded transport: await notifier.prepare() at start-up', {
        transport: transport?.name,
      })
    }
    transport.sendSync(message)
    if (notification.status !== undefined) this.status_ = notification.status
    return true
  }

  prepare(): Promise<boolean> {
    return this.enqueue(async () => {
      if (!this.enabled) return this.disabled()
      await this.transportFor(false)
      return true
    })
  }

  storeFds(fds: readonly number[], name: string, options: { poll?: boolean } = {}): Promise<boolean> {
    if (!Array.isArray(fds) || fds.length === 0 || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
      return Promise.reject(invalidField('FDSTORE', 'needs a non-empty array of file descriptor numbers'))
    }
    const notification: Notification = { fdStore: true, fdName: name }
    if (options.poll === false) notification.fdPoll = false
    return this.submit(notification, fds)
  }

  removeFds(name: string): Promise<boolean> {
    return this.send({ fdStoreRemove: true, fdName: name })
  }

  barrier(timeoutMs = 5000): Promise<boolean> {
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) return Promise.reject(invalidField('BARRIER', `timeout must be a positive number of ms (got ${String(timeoutMs)})`))
    return this.enqueue(async () => {
      if (!this.enabled) return this.disabled()
      const transport = await this.transportFor(true)
      await (transport.barrier as (ms: number) => Promise<void>)(timeoutMs)
      return true
    })
  }

  describe(): Description {
    const transports = this.plans.map((plan) => ({ ...plan }))
    const unitFile: string[] = []
    const transport = this.transport
    if (!this.enabled) {
      unitFile.push('Type=notify  # NOTIFY_SOCKET is not set: this process is not a Type=notify service')
    } else if (transport === 'exec') {
      unitFile.push('NotifyAccess=all  # systemd-notify runs as a child process; or install koffi to send in-process')
    } else {
      unitFile.push('NotifyAccess=main  # the default: the notifications come from this process')
    }
    if (this.enabled && transport !== 'fd') {
      unitFile.push('OpenFile=/run/systemd/notify:notify  # systemd ≥ 253, system services: pure-JS transport, no native module')
    }
    if (!this.watchdog.enabled) unitFile.push('WatchdogSec=30s  # restart the service when it stops answering')
    return {
      enabled: this.enabled,
      notifySocket: this.ctx.notifySocket,
      transport,
      transports,
      watchdog: { enabled: this.watchdog.enabled, intervalMs: this.watchdog.intervalMs, reason: this.watchdog.reason, running: this.watchdog.running },
      unitFile,
    }
  }

  async close(): Promise<void> {
    this.watchdog.stop()
    if (this.closed) return
    this.closed = true
    await this.tail
    this.active?.close()
    if (this.fdPassing !== this.active) this.fdPassing?.close()
  }

  /** Sends without throwing (for the watchdog's status reports). */
  private async sendQuietly(notification: Notification, remember: boolean): Promise<void> {
    try {
      await this.submit(notification, [], remember)
    } catch (error) {
      this.reportError(error)
    }
  }

  private submit(notification: Notification, fds: readonly number[], remember = true): Promise<boolean> {
    let message: Buffer
    try {
      message = encodeNotification(notification)
    } catch (error) {
      return Promise.reject(error)
    }
    // Fast path: nothing queued ahead, transport loaded, no fds: one non-blocking send, no async hops.
    // A full queue (or anything unusual) takes the queued, retrying path below.
    const active = this.active
    if (this.pending === 0 && fds.length === 0 && !this.closed && active?.trySend) {
      try {
        if (active.trySend(message)) {
          if (remember && notification.status !== undefined) this.status_ = notification.status
          return Promise.resolve(true)
        }
      } catch (error) {
        return Promise.reject(error)
      }
    }
    return this.enqueue(async () => {
      if (!this.enabled) return this.disabled()
      const transport = await this.transportFor(fds.length > 0)
      await transport.send(message, fds)
      if (remember && notification.status !== undefined) this.status_ = notification.status
      return true
    })
  }

  /** Runs sends one at a time, in call order: systemd must see READY after the STATUS sent before it. */
  private enqueue<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new SdNotifyError('ERR_SDNOTIFY_CLOSED', 'sdnotify: the notifier was closed'))
    this.pending++
    const result = this.tail.then(operation).finally(() => this.pending--)
    this.tail = result.catch(() => undefined)
    return result
  }

  private disabled(): false {
    if (this.strict) {
      throw new SdNotifyError('ERR_SDNOTIFY_NO_SOCKET', 'sdnotify: NOTIFY_SOCKET is not set: not running as a Type=notify systemd service (strict mode)', {
        field: 'NOTIFY_SOCKET',
        rule: 'must be set in strict mode',
      })
    }
    return false
  }

  /** The transport for the next send; the first use loads it, falling back down the order on failure. */
  private async transportFor(needsFds: boolean): Promise<Transport> {
    const transport = this.active ?? (this.active = await this.select())
    if (!needsFds || transport.capabilities.fdPassing) return transport
    // fd and unix-dgram cannot pass descriptors: reach the same socket through koffi for these messages.
    if (!this.fdPassing) {
      const target =
        transport.name === 'fd' ? { connectedFd: this.ctx.notifyFd as number } : this.ctx.address?.family === 'unix' ? { address: this.ctx.address } : undefined
      if (target === undefined) throw this.unsupported(transport.name)
      const { KoffiTransport } = await import('./transports/koffi.js')
      const koffi = new KoffiTransport(target, { sendTimeoutMs: this.sendTimeoutMs })
      try {
        await koffi.load()
      } catch (error) {
        throw this.unsupported(transport.name, error)
      }
      this.fdPassing = koffi
    }
    return this.fdPassing
  }

  private unsupported(name: TransportName, cause?: unknown): SdNotifyError {
    return new SdNotifyError(
      'ERR_SDNOTIFY_UNSUPPORTED',
      `sdnotify: passing file descriptors (FDSTORE, BARRIER) needs the koffi transport; the ${name} transport cannot, and koffi is unavailable`,
      { transport: name, cause },
    )
  }

  private async select(): Promise<Transport> {
    const order = this.forced ? [this.forced] : TRANSPORT_ORDER
    const failures: string[] = []
    for (const name of order) {
      const plan = this.plans.find((candidate) => candidate.name === name) as TransportPlan
      if (!plan.usable) {
        failures.push(`${name}: ${plan.reason}`)
        continue
      }
      const transport = await createTransport(name, this.ctx, { sendTimeoutMs: this.sendTimeoutMs })
      try {
        if ('load' in transport) await (transport as { load(): Promise<void> }).load()
      } catch (error) {
        plan.usable = false
        plan.reason = (error as Error).message
        failures.push(`${name}: ${plan.reason}`)
        continue
      }
      if (name === 'exec' && !warnedExec) {
        warnedExec = true
        this.warn(
          'sdnotify: using the exec transport (systemd-notify as a child process). Under the default NotifyAccess=main systemd ' +
            'ignores a non-root service\'s notifications this way: set NotifyAccess=all in the unit, or install koffi (npm install koffi) ' +
            'to send from this process.',
          'SDNOTIFY_EXEC_FALLBACK',
        )
      }
      return transport
    }
    throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', `sdnotify: no transport can reach the service manager (${failures.join('; ')})`, {
      transport: this.forced,
    })
  }
}

function validateOptions(options: NotifierOptions): void {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'must be an object')
  const names = ['auto', ...TRANSPORT_ORDER]
  if (options.transport !== undefined && !names.includes(options.transport)) {
    throw invalidOption('transport', `must be one of ${names.join(', ')} (got ${JSON.stringify(options.transport)})`)
  }
  if (options.sendTimeoutMs !== undefined && !(typeof options.sendTimeoutMs === 'number' && options.sendTimeoutMs > 0)) {
    throw invalidOption('sendTimeoutMs', `must be a positive number of milliseconds (got ${String(options.sendTimeoutMs)})`)
  }
  for (const name of ['onWarning', 'onError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw invalidOption(name, 'must be a function')
  }
}

/** Creates a notifier. Cheap: nothing is loaded or opened until the first notification is sent. */
export function createNotifier(options: NotifierOptions = {}): Notifier {
  return new SdNotifier(options)
}
