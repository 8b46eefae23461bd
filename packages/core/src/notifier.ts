import { type NotifyAddress, parseNotifySocket } from './address.js'
import { invalidField, invalidOption, SdNotifyError } from './errors.js'
import {
  type Environment,
  LISTEN_VARIABLES,
  NOTIFY_VARIABLES,
  systemdVariables,
  unsetVariables,
  WATCHDOG_VARIABLES,
} from './environment.js'
import { notifyFd } from './listen-fds.js'
import { encodeNotification, type Notification } from './protocol.js'
import { afterBackoff } from './system-errors.js'
import { statusText } from './status-text.js'
import {
  createTransport,
  findExecutable,
  planTransports,
  type SelectionContext,
  TRANSPORT_ORDER,
  type TransportPlan,
} from './select-transport.js'
import type { KoffiTarget } from './transports/koffi.js'
import type { Transport, TransportName, TransportOptions } from './transports/transport.js'
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
  /**
   * How long a notification may wait for the manager to take it, counted from the call: queued and retried
   * while the manager's queue is full (or its socket, once reached, is gone). Past it the call rejects with
   * ERR_SDNOTIFY_TIMEOUT. Default 5000 ms.
   */
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
  /** Stops the watchdog; waits for what is queued, at most until the deadlines of those sends; closes sockets. */
  close(): Promise<void>
}

let warnedExec = false

/** One caller waiting for a queued notification, with its own deadline (sendTimeoutMs after the call). */
interface Waiter {
  deadline: number
  resolve(sent: boolean): void
  reject(error: unknown): void
}

/** A queued notification (or barrier), sent in its turn. */
interface Job {
  message: Buffer
  fds: readonly number[]
  /** Runs instead of a plain send: barrier(). */
  run: ((transport: Transport) => Promise<void>) | undefined
  /** The STATUS= to record as lastStatus once sent. */
  status: string | undefined
  /** Status-only or WATCHDOG=1-only: a newer one of the same kind may supersede it (see enqueue()). */
  kind: 'status' | 'ping' | undefined
  /** Its caller, preceded by the callers of the messages it superseded: oldest deadline first. */
  waiters: Waiter[]
  /** Handed to the transport's async send (fds, barrier, fd and exec transports): it settles when that does. */
  inFlight: boolean
  /** Why its last try failed (EAGAIN, ENOENT…). */
  errno: string | undefined
}

const PING = Buffer.from('WATCHDOG=1')
const STATUS = Buffer.from('STATUS=')

function kindOf (message: Buffer, status: string | undefined): Job['kind'] {
  if (message.equals(PING)) return 'ping'
  // STATUS cannot hold a newline (protocol.ts), so a single line starting STATUS= sets nothing else.
  const oneLine = message.indexOf(10) === -1
  if (status !== undefined && oneLine && message.subarray(0, STATUS.length).equals(STATUS)) return 'status'
  return undefined
}

/** setTimeout() fires at once past 2^31 - 1 ms (a TimeoutOverflowWarning): cap it (sendTimeoutMs may be huge). */
const timerMs = (ms: number) => Math.max(0, Math.min(ms, 2 ** 31 - 1))

const closedError = () => new SdNotifyError('ERR_SDNOTIFY_CLOSED', 'sdnotify: the notifier was closed')

class SdNotifier implements Notifier {
  readonly enabled: boolean
  readonly watchdog: Watchdog
  private readonly strict: boolean
  /** $FDSTORE (systemd ≥ 254): FileDescriptorStoreMax= of the unit, when not 0. */
  private readonly fdStoreMax: string | undefined
  private readonly sendTimeoutMs: number
  private readonly forced: TransportName | undefined
  private readonly ctx: SelectionContext
  private readonly plans: TransportPlan[]
  private readonly warn: (message: string, code: string) => void
  private readonly reportError: (error: unknown) => void
  private active: Transport | undefined
  private fdPassing: Transport | undefined
  private selecting: Promise<Transport> | undefined
  private loadingFdPassing: Promise<Transport> | undefined
  /** Given to the transports: sendTimeoutMs is read per send, and is the time left to the message in flight. */
  private readonly transportOptions: TransportOptions
  private inFlightDeadline: number | undefined
  /** Notifications not yet taken by the manager, in call order. The fast path only sends when it is empty. */
  private readonly queue: Job[] = []
  /** The last status-only and WATCHDOG=1-only jobs queued since the last barrier, which newer ones may supersede. */
  private latest: { status?: Job; ping?: Job } = {}
  private draining = false
  private retrying = false
  /** Consecutive tries the manager refused (EAGAIN, ENOBUFS, a vanished socket): sets the back-off. */
  private refusals = 0
  /** Why the manager is not taking datagrams (an errno), from a refused try until one gets through. */
  private stalled: string | undefined
  /** A datagram sent to NOTIFY_SOCKET's path got through: ENOENT/ECONNREFUSED later mean the manager restarts. */
  private reachedPath = false
  private expiryTimer: NodeJS.Timeout | undefined
  private expiryAt = Infinity
  /** close() waiting for the queue to empty. */
  private readonly idle: (() => void)[] = []
  private closed = false
  private closing: Promise<void> | undefined
  /** The transports were closed: whatever is still queued is refused. */
  private shut = false
  private status_: string | undefined

  constructor (options: NotifierOptions) {
    validateOptions(options)
    const env = options.env ?? process.env
    const vars = systemdVariables(env)
    this.fdStoreMax = vars.FDSTORE
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
      systemdNotify: vars.NOTIFY_SOCKET === undefined
        ? undefined
        : findExecutable(options.systemdNotify ?? 'systemd-notify', env.PATH),
    }
    this.plans = planTransports(this.ctx)
    this.forced = options.transport === 'auto' ? undefined : options.transport
    this.enabled = vars.NOTIFY_SOCKET !== undefined || fd !== undefined
    this.strict = options.strict ?? false
    this.sendTimeoutMs = options.sendTimeoutMs ?? 5000
    const timeLeft = () => {
      const deadline = this.inFlightDeadline
      return deadline === undefined ? this.sendTimeoutMs : Math.max(1, deadline - performance.now())
    }
    this.transportOptions = {
      get sendTimeoutMs () {
        return timeLeft()
      },
      // sendSync is not queued: it gets its own fixed budget, never what is left to the message in flight.
      sendSyncTimeoutMs: Math.min(this.sendTimeoutMs, 1000),
    }
    this.warn = options.onWarning ?? ((message, code) => process.emitWarning(message, { code }))
    this.reportError =
      options.onError ??
      ((error) => {
        const message = String((error as Error)?.message ?? error)
        // Our own errors' messages start with 'sdnotify: ' already.
        this.warn(message.startsWith('sdnotify: ') ? message : `sdnotify: ${message}`, 'SDNOTIFY_ERROR')
      })
    this.watchdog = new Watchdog(watchdogSettings(vars), {
      sendPing: (value) => this.send({ watchdog: value }),
      reportUnhealthy: (reason) =>
        this.sendQuietly({ status: statusText(`Unhealthy, watchdog paused: ${reason}`) }, false),
      reportHealthy: () =>
        (this.status_ === undefined ? Promise.resolve() : this.sendQuietly({ status: this.status_ }, true)),
      onError: this.reportError,
    })
    if (options.unsetEnvironment) unsetVariables(env, [...NOTIFY_VARIABLES, ...WATCHDOG_VARIABLES, ...LISTEN_VARIABLES])
  }

  get transport (): TransportName | undefined {
    if (this.active) return this.active.name
    if (!this.enabled) return undefined
    return this.forced ?? this.plans.find((plan) => plan.usable)?.name
  }

  get lastStatus (): string | undefined {
    return this.status_
  }

  ready (status?: string) {
    return this.send(status === undefined ? { ready: true } : { ready: true, status })
  }

  reloading (status?: string) {
    return this.send(status === undefined ? { reloading: true } : { reloading: true, status })
  }

  stopping (status?: string) {
    return this.send(status === undefined ? { stopping: true } : { stopping: true, status })
  }

  status (text: string) {
    return this.send({ status: text })
  }

  errno (errno: number, status?: string) {
    return this.send(status === undefined ? { errno } : { errno, status })
  }

  extendTimeout (ms: number) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      const rule = `needs a positive number of milliseconds (got ${String(ms)})`
      return Promise.reject(invalidField('EXTEND_TIMEOUT_USEC', rule))
    }
    return this.send({ extendTimeoutUsec: Math.ceil(ms * 1000) })
  }

  mainPid (pid: number) {
    return this.send({ mainPid: pid })
  }

  send (notification: Notification): Promise<boolean> {
    return this.submit(notification, [])
  }

  sendSync (notification: Notification): boolean {
    const message = encodeNotification(notification)
    if (this.closed) throw closedError()
    if (!this.enabled) return this.disabled()
    const transport = this.active
    if (!transport?.sendSync) {
      const message = 'sdnotify: sendSync() needs a loaded transport: await notifier.prepare() at start-up'
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', message, { transport: transport?.name })
    }
    transport.sendSync(message)
    this.accepted(transport)
    if (notification.status !== undefined) this.status_ = notification.status
    return true
  }

  /** Not queued: it loads the transport even while earlier sends wait for a frozen manager. */
  async prepare (): Promise<boolean> {
    if (this.closed) throw closedError()
    if (!this.enabled) return this.disabled()
    await this.transportFor(false)
    return true
  }

  storeFds (fds: readonly number[], name: string, options: { poll?: boolean } = {}): Promise<boolean> {
    if (!Array.isArray(fds) || fds.length === 0 || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
      return Promise.reject(invalidField('FDSTORE', 'needs a non-empty array of file descriptor numbers'))
    }
    const notification: Notification = { fdStore: true, fdName: name }
    if (options.poll === false) notification.fdPoll = false
    return this.submit(notification, fds)
  }

  removeFds (name: string): Promise<boolean> {
    return this.send({ fdStoreRemove: true, fdName: name })
  }

  barrier (timeoutMs = 5000): Promise<boolean> {
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) {
      const rule = `timeout must be a positive number of ms (got ${String(timeoutMs)})`
      return Promise.reject(invalidField('BARRIER', rule))
    }
    if (this.closed) return Promise.reject(closedError())
    if (!this.enabled) return this.whenDisabled()
    // Its send must start within sendTimeoutMs of the call; the wait for the acknowledgement is timeoutMs.
    const run = (transport: Transport) => (transport.barrier as (ms: number) => Promise<void>)(timeoutMs)
    return this.enqueue(Buffer.from('BARRIER=1'), [], undefined, run)
  }

  describe (): Description {
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
      unitFile.push(
        'OpenFile=/run/systemd/notify:notify  # systemd ≥ 253, system services: pure-JS transport, no native module'
      )
    }
    if (!this.watchdog.enabled) unitFile.push('WatchdogSec=30s  # restart the service when it stops answering')
    // $FDSTORE: FileDescriptorStoreMax= (systemd ≥ 254 sets it when not 0; 252 never does, so this also shows there).
    if (this.enabled && this.fdStoreMax === undefined) {
      unitFile.push('FileDescriptorStoreMax=1  # for fdStore: systemd keeps the listening socket across restarts')
    }
    return {
      enabled: this.enabled,
      notifySocket: this.ctx.notifySocket,
      transport,
      transports,
      watchdog: {
        enabled: this.watchdog.enabled,
        intervalMs: this.watchdog.intervalMs,
        reason: this.watchdog.reason,
        running: this.watchdog.running,
      },
      unitFile,
    }
  }

  close (): Promise<void> {
    this.watchdog.stop()
    // Every call gets the one closing promise: a signal handler and a framework hook may both close, and the
    // second must not return while a queued STOPPING=1 is still on its way.
    this.closing ??= this.shutDown()
    return this.closing
  }

  private async shutDown (): Promise<void> {
    this.closed = true
    if (this.queue.length > 0) {
      // What is queued may still go out, but close() waits no longer than its deadlines: a transport still
      // busy with an earlier message (a blocked write) is not waited for past them.
      let last = performance.now()
      for (const job of this.queue) last = Math.max(last, job.waiters.at(-1)?.deadline ?? last)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timerMs(last - performance.now()))
        this.idle.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
      // libuv runs timers by its loop time, cached at the start of each turn: the timer may fire a fraction of a
      // millisecond before `last` by performance.now(). Once it fired (or the queue emptied), every deadline is due.
      this.expire(Math.max(performance.now(), last))
    }
    this.shut = true
    this.active?.close()
    if (this.fdPassing !== this.active) this.fdPassing?.close()
  }

  /** Sends without throwing (for the watchdog's status reports). */
  private async sendQuietly (notification: Notification, remember: boolean): Promise<void> {
    try {
      await this.submit(notification, [], remember)
    } catch (error) {
      this.reportError(error)
    }
  }

  private submit (notification: Notification, fds: readonly number[], remember = true): Promise<boolean> {
    let message: Buffer
    try {
      message = encodeNotification(notification)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.closed) return Promise.reject(closedError())
    if (!this.enabled) return this.whenDisabled()
    const status = remember ? notification.status : undefined
    // Fast path: nothing queued ahead, transport loaded, no fds: one non-blocking send, no async hops.
    // A full queue (or anything unusual) takes the queued, retrying path below.
    const active = this.active
    if (this.queue.length === 0 && fds.length === 0 && active?.trySend) {
      try {
        if (active.trySend(message)) {
          this.accepted(active)
          if (status !== undefined) this.status_ = status
          return Promise.resolve(true)
        }
        this.refused('EAGAIN')
      } catch (error) {
        const errno = this.vanished(error, active)
        if (errno === undefined) return Promise.reject(error)
        this.refused(errno)
      }
    }
    return this.enqueue(message, fds, status, undefined)
  }

  /**
   * Queues a notification; it is sent after everything queued before it, or rejected with ERR_SDNOTIFY_TIMEOUT
   * once sendTimeoutMs have passed since this call. What the queue keeps while the manager is not taking
   * datagrams (a refused try, until one gets through): everything, except that a status-only message
   * (`STATUS=…` alone) supersedes the status-only message still queued before it, and a `WATCHDOG=1`-only
   * ping the ping before it, unless a barrier lies between them. The manager keeps only the latest StatusText,
   * and a ping only restarts its timer, so the older one would change nothing once the newer arrives; the
   * older one's callers then wait on the newer one (true once it is sent), each until their own deadline.
   * READY, RELOADING, STOPPING, ERRNO, FDSTORE, BARRIER, WATCHDOG=trigger, combined messages: never dropped.
   */
  private enqueue (message: Buffer, fds: readonly number[], status: string | undefined, run: Job['run']) {
    const deadline = performance.now() + this.sendTimeoutMs
    let waiter!: Waiter
    const promise = new Promise<boolean>((resolve, reject) => (waiter = { deadline, resolve, reject }))
    const kind = run === undefined ? kindOf(message, status) : undefined
    const job: Job = { message, fds, run, status, kind, waiters: [waiter], inFlight: false, errno: undefined }
    if (kind !== undefined) {
      const older = this.latest[kind]
      if (older !== undefined && !older.inFlight && this.stalled !== undefined) {
        this.remove(older)
        job.waiters = older.waiters
        job.waiters.push(waiter)
        job.errno = older.errno
        older.waiters = []
      }
      this.latest[kind] = job
    } else if (run !== undefined) {
      this.latest = {} // what was queued before a barrier must reach the manager before it
    }
    this.queue.push(job)
    this.armExpiry(waiter.deadline)
    this.kick()
    return promise
  }

  /** Starts sending the queue, or lets the pending retry do it. */
  private kick (): void {
    if (this.draining || this.retrying) return
    if (this.refusals > 0) this.scheduleRetry()
    else void this.drain()
  }

  /** Sends the queue in order until it is empty or the manager refuses; never rejects. */
  private async drain (): Promise<void> {
    this.draining = true
    let refused = false
    try {
      while (this.queue.length > 0 && !refused) refused = !(await this.sendHead())
    } catch (error) {
      this.reportError(error) // a bug: what is queued still expires at its deadline
    } finally {
      this.draining = false
    }
    if (refused) this.scheduleRetry()
  }

  /** Retries with the transports' back-off (system-errors.ts backoffMs): at most ~60 tries a second while frozen. */
  private scheduleRetry (): void {
    this.retrying = true
    afterBackoff(this.refusals, () => {
      this.retrying = false
      if (!this.draining) void this.drain()
    })
  }

  /** One try at the head of the queue. false: the manager refused it (retry later); true: go on. */
  private async sendHead (): Promise<boolean> {
    const job = this.queue[0] as Job
    if (this.shut) {
      this.fail(job, closedError())
      return true
    }
    let transport: Transport
    try {
      transport = await this.transportFor(job.fds.length > 0 || job.run !== undefined)
    } catch (error) {
      this.fail(job, error)
      return true
    }
    if (this.queue[0] !== job) return true // it expired or was superseded meanwhile
    try {
      if (job.run === undefined && job.fds.length === 0 && transport.trySend) {
        if (!transport.trySend(job.message)) return this.refusedHead(job, 'EAGAIN')
      } else {
        job.inFlight = true
        this.inFlightDeadline = job.waiters.at(-1)?.deadline
        try {
          await (job.run ? job.run(transport) : transport.send(job.message, job.fds))
        } finally {
          job.inFlight = false
          this.inFlightDeadline = undefined
        }
      }
    } catch (error) {
      const errno = this.vanished(error, transport)
      if (errno !== undefined) return this.refusedHead(job, errno)
      const { code, errno: cause } = error as { code?: unknown; errno?: unknown }
      // A transport that gave up on a full queue (its own retries, or a blocked write): the manager is stalled.
      if (code === 'ERR_SDNOTIFY_TIMEOUT' && typeof cause === 'string') this.stalled = cause
      this.fail(job, error)
      return true
    }
    this.accepted(transport)
    this.sent(job)
    return true
  }

  private refusedHead (job: Job, errno: string): false {
    job.errno = errno
    this.refused(errno)
    this.expire() // an in-flight try may have outlived some deadlines
    return false
  }

  private accepted (transport: Transport): void {
    if (this.sendsToPath(transport)) this.reachedPath = true
    this.refusals = 0
    this.stalled = undefined
  }

  private refused (errno: string): void {
    this.refusals++
    this.stalled = errno
  }

  /**
   * ENOENT or ECONNREFUSED from a socket that took our datagrams before: its manager is gone, and a manager
   * restarting binds it again (systemd itself keeps its notify socket across `daemon-reexec`: it passes the
   * fd to its new self, manager-serialize.c "notify-fd"). Retried like EAGAIN, within each message's
   * deadline, so nothing is lost across the gap. Before any datagram got through it fails at once, as
   * sd_notify(3) does: the address is wrong, and waiting would only delay the error.
   */
  private vanished (error: unknown, transport: Transport): string | undefined {
    const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown }
    if (code !== 'ERR_SDNOTIFY_SEND_FAILED' || (errno !== 'ENOENT' && errno !== 'ECONNREFUSED')) return undefined
    return this.reachedPath && this.sendsToPath(transport) ? errno : undefined
  }

  /**
   * Sends to NOTIFY_SOCKET's path on each send, so it reaches a socket bound there again. Not the fd
   * transport (and koffi on its descriptor): connected once and for all; not exec (systemd-notify's business).
   */
  private sendsToPath (transport: Transport): boolean {
    return transport.name === 'unix-dgram' || (transport.name === 'koffi' && this.active?.name !== 'fd')
  }

  /** Removes a job the manager took, and answers its callers. */
  private sent (job: Job): void {
    this.remove(job)
    if (job.status !== undefined) this.status_ = job.status
    for (const waiter of job.waiters.splice(0)) waiter.resolve(true)
  }

  /** Removes a job that cannot be sent, and answers its callers. */
  private fail (job: Job, error: unknown): void {
    this.remove(job)
    for (const waiter of job.waiters.splice(0)) waiter.reject(error)
  }

  private remove (job: Job): void {
    const index = this.queue.indexOf(job)
    if (index >= 0) this.queue.splice(index, 1)
    if (this.latest.status === job) this.latest.status = undefined
    if (this.latest.ping === job) this.latest.ping = undefined
    if (this.queue.length === 0) for (const resolve of this.idle.splice(0)) resolve()
  }

  /**
   * Rejects the callers whose deadline has passed. A message the transport is sending stays with the transport
   * (a write cannot be taken back), but its callers are answered at their own deadline all the same: one that
   * superseded older calls is sent until the newest caller's deadline, and the older ones must not wait that long.
   */
  private expire (now = performance.now()): void {
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    this.expiryAt = Infinity
    let next = Infinity
    for (const job of [...this.queue]) {
      const due = job.waiters.findIndex((waiter) => waiter.deadline > now)
      if (due !== 0) {
        const expired = due < 0 ? job.waiters : job.waiters.slice(0, due)
        job.waiters = due < 0 ? [] : job.waiters.slice(due)
        if (job.waiters.length === 0 && !job.inFlight) this.remove(job)
        const error = this.timeout(job)
        for (const waiter of expired) waiter.reject(error)
      }
      const first = job.waiters[0]
      if (first !== undefined) next = Math.min(next, first.deadline)
    }
    if (next < Infinity) this.armExpiry(next)
  }

  private armExpiry (at: number): void {
    if (at >= this.expiryAt) return
    clearTimeout(this.expiryTimer)
    this.expiryAt = at
    // Unref'd: while something is queued a retry timer or the transport's own work keeps the process up.
    this.expiryTimer = setTimeout(() => this.expire(), timerMs(at - performance.now())).unref()
  }

  private timeout (job: Job): SdNotifyError {
    // Waiting behind a send the transport has not finished (a blocked write on the fd transport): the manager is
    // not taking datagrams, which is EAGAIN to the caller even before that send itself gives up.
    const behind = job.errno === undefined && this.stalled === undefined && this.inFlightDeadline !== undefined
    const errno = job.errno ?? this.stalled ?? (behind ? 'EAGAIN' : undefined)
    const transport = this.active?.name
    let reason: string
    if (behind) reason = 'it waited behind an earlier notification the manager has not taken yet (EAGAIN)'
    else if (errno === undefined) reason = 'it waited behind an earlier notification the transport was still sending'
    else if (errno === 'ENOENT' || errno === 'ECONNREFUSED') {
      reason = `the notify socket is gone (${errno}): is the service manager running?`
    } else reason = `the manager's queue stayed full (${errno}): is the service manager frozen or overloaded?`
    const what = `sdnotify: ${transport ?? 'no'} transport: not sent within ${this.sendTimeoutMs} ms of the call`
    return new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', `${what}: ${reason}`, { transport, errno })
  }

  private whenDisabled (): Promise<boolean> {
    try {
      return Promise.resolve(this.disabled())
    } catch (error) {
      return Promise.reject(error)
    }
  }

  private disabled (): false {
    if (this.strict) {
      const message = 'sdnotify: NOTIFY_SOCKET is not set: not running as a Type=notify systemd service (strict mode)'
      throw new SdNotifyError('ERR_SDNOTIFY_NO_SOCKET', message, {
        field: 'NOTIFY_SOCKET',
        rule: 'must be set in strict mode',
      })
    }
    return false
  }

  /**
   * The transport for the next send; the first use loads it, falling back down the order on failure. One
   * load at a time (prepare() runs beside the queue); a failed load is tried again by the next caller.
   */
  private async transportFor (needsFds: boolean): Promise<Transport> {
    if (!this.active) {
      this.selecting ??= this.select().then(
        (transport) => (this.active = transport),
        (error: unknown) => {
          this.selecting = undefined
          throw error
        }
      )
      await this.selecting
    }
    const transport = this.active as Transport
    if (!needsFds || transport.capabilities.fdPassing) return transport
    // fd and unix-dgram cannot pass descriptors: reach the same socket through koffi for these messages.
    if (this.fdPassing) return this.fdPassing
    this.loadingFdPassing ??= this.loadFdPassing(transport).then(
      (koffi) => (this.fdPassing = koffi),
      (error: unknown) => {
        this.loadingFdPassing = undefined
        throw error
      }
    )
    return this.loadingFdPassing
  }

  private async loadFdPassing (transport: Transport): Promise<Transport> {
    let target: KoffiTarget
    if (transport.name === 'fd') target = { connectedFd: this.ctx.notifyFd as number }
    else if (this.ctx.address?.family === 'unix') target = { address: this.ctx.address }
    else throw this.unsupported(transport.name)
    const { KoffiTransport } = await import('./transports/koffi.js')
    const koffi = new KoffiTransport(target, this.transportOptions)
    try {
      await koffi.load()
    } catch (error) {
      throw this.unsupported(transport.name, error)
    }
    return koffi
  }

  private unsupported (name: TransportName, cause?: unknown): SdNotifyError {
    return new SdNotifyError(
      'ERR_SDNOTIFY_UNSUPPORTED',
      'sdnotify: passing file descriptors (FDSTORE, BARRIER) needs the koffi transport; ' +
        `the ${name} transport cannot, and koffi is unavailable`,
      { transport: name, cause }
    )
  }

  private async select (): Promise<Transport> {
    const order = this.forced ? [this.forced] : TRANSPORT_ORDER
    const failures: string[] = []
    for (const name of order) {
      const plan = this.plans.find((candidate) => candidate.name === name) as TransportPlan
      if (!plan.usable) {
        failures.push(`${name}: ${plan.reason}`)
        continue
      }
      const transport = await createTransport(name, this.ctx, this.transportOptions)
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
          'sdnotify: using the exec transport (systemd-notify as a child process). ' +
            'Under the default NotifyAccess=main systemd ignores a non-root service\'s notifications this way: ' +
            'set NotifyAccess=all in the unit, or install koffi (npm install koffi) to send from this process.',
          'SDNOTIFY_EXEC_FALLBACK'
        )
      }
      return transport
    }
    const message = `sdnotify: no transport can reach the service manager (${failures.join('; ')})`
    throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', message, { transport: this.forced })
  }
}

function validateOptions (options: NotifierOptions): void {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'must be an object')
  const names = ['auto', ...TRANSPORT_ORDER]
  if (options.transport !== undefined && !names.includes(options.transport)) {
    throw invalidOption('transport', `must be one of ${names.join(', ')} (got ${JSON.stringify(options.transport)})`)
  }
  const sendTimeoutMs = options.sendTimeoutMs
  if (sendTimeoutMs !== undefined && !(typeof sendTimeoutMs === 'number' && sendTimeoutMs > 0)) {
    throw invalidOption('sendTimeoutMs', `must be a positive number of milliseconds (got ${String(sendTimeoutMs)})`)
  }
  for (const name of ['onWarning', 'onError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw invalidOption(name, 'must be a function')
    }
  }
}

/** Creates a notifier. Cheap: nothing is loaded or opened until the first notification is sent. */
export function createNotifier (options: NotifierOptions = {}): Notifier {
  return new SdNotifier(options)
}
