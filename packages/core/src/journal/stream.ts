// journalStream(): a pino destination writing each line as one native journal entry, with a bounded queue for
// the moments journald reads slower than we write, and stdout as the place for anything it cannot take.
import { fstatSync } from 'node:fs'
import { SdNotifyError } from '../index.js'
import { fieldNameProblem } from './fields.js'
import { isBusy, JOURNAL_SOCKET, JournalSocket, type PendingEntry } from './native.js'
import { encodePinoLine } from './pino.js'

export type JournalTarget = 'auto' | 'journal' | 'stdout'

export interface JournalStreamOptions {
  /**
   * `'auto'` (default): native entries only when stdout or stderr is connected to the journal
   * ($JOURNAL_STREAM matches it, i.e. `StandardOutput=journal`), else plain lines on stdout, so `node app.js` in
   * a terminal still prints. `'journal'`: native entries whatever stdout is. `'stdout'`: always plain lines.
   */
  target?: JournalTarget
  /** SYSLOG_IDENTIFIER (what `journalctl -t` matches and prints before each line); default `process.title`. */
  identifier?: string
  /** The field that keeps the original JSON line (nothing is lost); `false` for none. Default `PINO_LINE`. */
  lineField?: string | false
  /** Extra level → syslog priority (0-7) mappings, by label or number (`{ notice: 5, 35: 5 }`). */
  priorities?: Record<string, number>
  /** The most bytes of entries waiting for journald; beyond it lines go to stdout. Default 16 MiB. */
  maxQueueBytes?: number
  /** How long queued entries may wait without journald taking any before they go to stdout. Default 5000 ms. */
  stallTimeoutMs?: number
  /** journald's native socket. Default `/run/systemd/journal/socket`. */
  socket?: string
  /** Where plain lines go. Default `process.stdout`. */
  stdout?: { write(chunk: string): unknown }
  /** Called once per kind of trouble (koffi missing, journald gone…). Default: `process.emitWarning`. */
  onWarning?: (message: string, code: string) => void
  /** The environment to read JOURNAL_STREAM from. Default `process.env`. */
  env?: Record<string, string | undefined>
}

export interface JournalStreamCounters {
  /** Entries journald took. */
  sent: number
  /** Of those, entries too large for a datagram, passed in a sealed memfd. */
  sentViaMemfd: number
  /** Entries waiting now (journald was busy, or koffi still loading). */
  queued: number
  /** Lines written to stdout instead of the journal: queue full, journald stalled or gone, koffi unavailable. */
  fellBackToStdout: number
  /** Lines neither journald nor stdout took (stdout threw). */
  dropped: number
}

export interface JournalStream {
  /** pino's destination interface: one JSON line. Never throws. */
  write(line: string): boolean
  /** Where lines go: 'journal' (native entries) or 'stdout'. */
  readonly target: 'journal' | 'stdout'
  /**
   * Always true. pino's one-argument form, `pino(journalStream())`, takes its argument for a destination only when
   * it has `writable` (or is a Node stream); without it pino reads it as options and logs to stdout (pino 10,
   * lib/tools.js normalizeArgs).
   */
  readonly writable: true
  counters(): JournalStreamCounters
  /** Resolves when nothing is queued any more (sent, or written to stdout after the stall timeout). */
  flush(): Promise<void>
  /**
   * Sends what is queued now, retrying a full journald for up to 100 ms (pino calls it after `fatal()`); what is
   * left stays queued. At process exit, whatever is still queued then goes to stdout.
   */
  flushSync(): void
  /** Flushes, then closes the socket. */
  end(): Promise<void>
}

/**
 * Whether stdout or stderr is the journal's stream socket: $JOURNAL_STREAM (`DEVICE:INODE`, set by systemd for
 * `StandardOutput=journal`/`StandardError=journal`, systemd.exec(5)) names the stream's device and inode; the
 * variable is inherited by children whose output goes elsewhere, so compare it with fstat, as
 * sd_journal_stream_fd(3) advises.
 */
export function stdioIsJournal (
  env: Record<string, string | undefined> = process.env,
  fds: readonly number[] = [1, 2]
): boolean {
  const match = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '')
  if (!match) return false
  const device = BigInt(match[1] as string)
  const inode = BigInt(match[2] as string)
  for (const fd of fds) {
    try {
      const stat = fstatSync(fd, { bigint: true })
      if (stat.dev === device && stat.ino === inode) return true
    } catch {
      /* not open */
    }
  }
  return false
}

function invalidOption (field: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `sdnotify: option ${field} ${rule}`, { field, rule })
}

const OVERHEAD_BYTES = 64 // per queued entry: the object and array slot, roughly

export function journalStream (options: JournalStreamOptions = {}): JournalStream {
  const target = options.target ?? 'auto'
  if (target !== 'auto' && target !== 'journal' && target !== 'stdout') {
    throw invalidOption('target', "must be 'auto', 'journal' or 'stdout'")
  }
  for (const name of ['maxQueueBytes', 'stallTimeoutMs'] as const) {
    const value = options[name]
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
      throw invalidOption(name, 'must be a number ≥ 0')
    }
  }
  const lineProblem = typeof options.lineField === 'string' ? fieldNameProblem(options.lineField) : undefined
  if (lineProblem) throw invalidOption('lineField', lineProblem)
  if (options.identifier !== undefined && (typeof options.identifier !== 'string' || options.identifier === '')) {
    throw invalidOption('identifier', 'must be a non-empty string')
  }
  for (const [level, priority] of Object.entries(options.priorities ?? {})) {
    if (!Number.isInteger(priority) || priority < 0 || priority > 7) {
      throw invalidOption(`priorities.${level}`, 'must be a syslog priority, an integer from 0 (emerg) to 7 (debug)')
    }
  }
  const stdout = options.stdout ?? process.stdout
  const native = target === 'journal' || (target === 'auto' && stdioIsJournal(options.env ?? process.env))
  if (!native) return new StdoutStream(stdout)
  return new NativeStream(options, stdout)
}

class StdoutStream implements JournalStream {
  readonly target = 'stdout' as const
  readonly writable = true
  private readonly stdout: { write(chunk: string): unknown }
  private fell = 0
  private dropped = 0

  constructor (stdout: { write(chunk: string): unknown }) {
    this.stdout = stdout
  }

  write (line: string): boolean {
    try {
      this.stdout.write(line)
      this.fell++
    } catch {
      this.dropped++
    }
    return true
  }

  counters (): JournalStreamCounters {
    return { sent: 0, sentViaMemfd: 0, queued: 0, fellBackToStdout: this.fell, dropped: this.dropped }
  }

  async flush (): Promise<void> {}
  flushSync (): void {}
  async end (): Promise<void> {}
}

interface Queued extends PendingEntry {
  line: string
}

const streams = new Set<NativeStream>()
let exitHook = false

class NativeStream implements JournalStream {
  readonly target = 'journal' as const
  readonly writable = true
  private readonly socket: JournalSocket
  private readonly stdout: { write(chunk: string): unknown }
  private readonly lineOptions: Parameters<typeof encodePinoLine>[1]
  private readonly maxQueueBytes: number
  private readonly stallTimeoutMs: number
  private readonly warn: (message: string, code: string) => void
  private readonly warned = new Set<string>()
  private queue: Queued[] = []
  private head = 0
  private queuedBytes = 0
  private sent = 0
  private fell = 0
  private dropped = 0
  private unusable = false
  private timer: NodeJS.Timeout | undefined
  private immediate: NodeJS.Immediate | undefined
  private busyTries = 0
  private lastProgress = Date.now()
  private drained: (() => void)[] = []

  constructor (options: JournalStreamOptions, stdout: { write(chunk: string): unknown }) {
    this.socket = new JournalSocket(options.socket ?? JOURNAL_SOCKET)
    this.stdout = stdout
    this.lineOptions = {
      identifier: options.identifier ?? process.title,
      lineField: options.lineField ?? 'PINO_LINE',
      priorities: options.priorities,
    }
    this.maxQueueBytes = options.maxQueueBytes ?? 16 << 20
    this.stallTimeoutMs = options.stallTimeoutMs ?? 5000
    this.warn = options.onWarning ?? ((message, code) => process.emitWarning(message, { code }))
    streams.add(this)
    if (!exitHook) {
      exitHook = true
      process.once('exit', () => {
        for (const stream of streams) stream.exitFlush()
      })
    }
    this.socket.load().then(
      () => this.drain(),
      (error: unknown) => {
        this.unusable = true
        const reason = (error as Error).message
        this.warnOnce('SDNOTIFY_JOURNAL_UNAVAILABLE', `sdnotify: journal: ${reason}; logging to stdout`)
        this.spillAll()
      }
    )
  }

  write (line: string): boolean {
    try {
      if (typeof line !== 'string') line = String(line)
      if (this.unusable) return this.toStdout(line)
      const entry: Queued = { line, data: encodePinoLine(line, this.lineOptions) }
      if (this.head === this.queue.length && this.socket.loaded) {
        const errno = this.socket.trySend(entry)
        if (errno === undefined) {
          this.sent++
          return true
        }
        if (!isBusy(errno)) return this.failed(entry, errno)
        this.lastProgress = Date.now()
      }
      return this.enqueue(entry)
    } catch {
      return this.toStdout(line)
    }
  }

  private enqueue (entry: Queued): boolean {
    const size = entry.data.length + OVERHEAD_BYTES
    if (this.queuedBytes + size > this.maxQueueBytes) {
      const message = `more than ${this.maxQueueBytes} bytes wait for journald; writing lines to stdout meanwhile`
      this.warnOnce('SDNOTIFY_JOURNAL_QUEUE_FULL', `sdnotify: journal: ${message}`)
      this.socket.release(entry)
      return this.toStdout(entry.line)
    }
    this.queue.push(entry)
    this.queuedBytes += size
    this.schedule()
    return true
  }

  /** journald refused for good (ENOENT, EACCES…): this line goes to stdout; later lines try again. */
  private failed (entry: Queued, errno: string): boolean {
    this.socket.release(entry)
    const message = `send to ${this.socket.path} failed with ${errno}; writing those lines to stdout`
    this.warnOnce(`SDNOTIFY_JOURNAL_${errno}`, `sdnotify: journal: ${message}`)
    return this.toStdout(entry.line)
  }

  private toStdout (line: string): boolean {
    try {
      this.stdout.write(line.endsWith('\n') ? line : `${line}\n`)
      this.fell++
    } catch {
      this.dropped++
    }
    return true
  }

  private schedule (): void {
    if (this.timer || this.immediate || !this.socket.loaded) return
    // journald reads a datagram in microseconds: retry on the next turn first, then back off up to 20 ms.
    const delay = this.busyTries < 3 ? 0 : Math.min(20, 2 ** (this.busyTries - 3))
    if (delay === 0) {
      this.immediate = setImmediate(() => {
        this.immediate = undefined
        this.drain()
      })
    } else {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.drain()
      }, delay)
    }
  }

  /** Sends queued entries until journald is busy; at most ~2 ms per turn, so the event loop keeps moving. */
  private drain (): void {
    const until = performance.now() + 2
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head] as Queued
      const errno = this.socket.trySend(entry)
      if (errno !== undefined && isBusy(errno)) {
        if (Date.now() - this.lastProgress > this.stallTimeoutMs) {
          const message = `journald took nothing for ${this.stallTimeoutMs} ms; queued lines went to stdout`
          this.warnOnce('SDNOTIFY_JOURNAL_STALLED', `sdnotify: journal: ${message}`)
          this.spillAll()
          return
        }
        this.busyTries++
        this.schedule()
        return
      }
      this.shift()
      this.busyTries = 0
      this.lastProgress = Date.now()
      if (errno === undefined) this.sent++
      else this.failed(entry, errno)
      if (performance.now() > until) {
        this.schedule()
        return
      }
    }
    this.settled()
  }

  private shift (): void {
    const entry = this.queue[this.head] as Queued
    this.queuedBytes -= entry.data.length + OVERHEAD_BYTES
    this.head++
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }

  private settled (): void {
    if (this.head < this.queue.length) return
    for (const resolve of this.drained.splice(0)) resolve()
  }

  /** Everything queued to stdout, in order. */
  private spillAll (): void {
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head] as Queued
      this.shift()
      this.socket.release(entry)
      this.toStdout(entry.line)
    }
    this.settled()
  }

  private warnOnce (code: string, message: string): void {
    if (this.warned.has(code)) return
    this.warned.add(code)
    try {
      this.warn(message, code)
    } catch {
      /* a warning handler must not break logging */
    }
  }

  counters (): JournalStreamCounters {
    const queued = this.queue.length - this.head
    const memfd = this.socket.memfdSends
    return { sent: this.sent, sentViaMemfd: memfd, queued, fellBackToStdout: this.fell, dropped: this.dropped }
  }

  flush (): Promise<void> {
    if (this.head === this.queue.length) return Promise.resolve()
    return new Promise((resolve) => this.drained.push(resolve))
  }

  flushSync (): void {
    if (!this.socket.loaded) return // koffi loads asynchronously: the queue drains once it is there
    const deadline = performance.now() + 100
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head] as Queued
      const errno = this.socket.trySend(entry)
      if (errno !== undefined && isBusy(errno)) {
        if (performance.now() < deadline) continue
        return // journald is still full: the entry stays queued for the asynchronous drain
      }
      this.shift()
      if (errno === undefined) this.sent++
      else this.failed(entry, errno)
    }
    this.settled()
  }

  /** At process exit: what journald does not take now goes to stdout, so nothing is lost. */
  exitFlush (): void {
    try {
      this.flushSync()
    } finally {
      this.spillAll()
    }
  }

  async end (): Promise<void> {
    await this.flush()
    clearTimeout(this.timer)
    if (this.immediate) clearImmediate(this.immediate)
    streams.delete(this)
    this.socket.close()
  }
}
