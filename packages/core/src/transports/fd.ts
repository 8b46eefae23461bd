// systemd ≥ 253: `OpenFile=/run/systemd/notify:notify` (or the user manager's $XDG_RUNTIME_DIR/systemd/notify)
// passes a socket already connected to the notify socket (exec-invoke.c connect_unix_harder(): SOCK_DGRAM first).
// Writing to it needs no native code at all.
import { write, writeSync } from 'node:fs'
import { SdNotifyError } from '../errors.js'
import { errnoName, sendFailed, spinWhileBusy } from '../system-errors.js'
import { loadedLibc, MSG_DONTWAIT, MSG_NOSIGNAL } from './libc.js'
import { syncBudgetMs, type Transport, type TransportOptions } from './transport.js'

/** true when `promise` settles (either way) before `deadline` (a performance.now() value); never rejects. */
function settlesBefore (promise: Promise<unknown>, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()))
    const settled = () => {
      clearTimeout(timer)
      resolve(true)
    }
    promise.then(settled, settled)
  })
}

export class FdTransport implements Transport {
  readonly name = 'fd' as const
  readonly capabilities = { fdPassing: false, abstractNames: true, ownPid: true }
  readonly fd: number
  private readonly options: TransportOptions
  /**
   * A write whose send gave up waiting (timed out) but which still blocks a thread of libuv's pool: a write
   * cannot be cancelled. It settles once the manager reads again (or the descriptor fails).
   */
  private abandoned: Promise<void> | undefined

  constructor (fd: number, options: TransportOptions) {
    this.fd = fd
    this.options = options
  }

  /**
   * fs.write runs on libuv's thread pool: a manager that does not read blocks a pool thread, never the event
   * loop. On a blocking socket nothing bounds that wait, so the send gives up after sendTimeoutMs (the write
   * may still complete later), and while that write is blocked later sends wait for it rather than block a
   * second pool thread (the pool has 4, shared with fs, dns and zlib).
   */
  async send (message: Buffer): Promise<void> {
    const timeoutMs = this.options.sendTimeoutMs
    const deadline = performance.now() + timeoutMs
    if (this.abandoned && !(await settlesBefore(this.abandoned, deadline))) {
      throw this.timeout(timeoutMs, 'an earlier write is still blocked: the manager is not reading its queue')
    }
    const written = this.write(message)
    if (await settlesBefore(written, deadline)) return written
    const abandoned: Promise<void> = written.then(
      () => this.forget(abandoned),
      () => this.forget(abandoned)
    )
    this.abandoned = abandoned
    throw this.timeout(timeoutMs, 'the manager is not reading its queue; the datagram may still be delivered later')
  }

  private forget (write: Promise<void>): void {
    if (this.abandoned === write) this.abandoned = undefined
  }

  private write (message: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      write(this.fd, message, 0, message.length, null, (error, written) => {
        if (error) reject(sendFailed(this.name, error.code ?? 'EIO', 'write', ` on fd ${this.fd}`))
        else if (written !== message.length) reject(this.short(written, message.length))
        else resolve()
      })
    })
  }

  private timeout (timeoutMs: number, reason: string): SdNotifyError {
    const message = `sdnotify: fd transport: write on fd ${this.fd} did not complete within ${timeoutMs} ms`
    return new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', `${message} (EAGAIN: ${reason})`, {
      transport: this.name,
      errno: 'EAGAIN',
      syscall: 'write',
    })
  }

  private short (written: number, length: number): SdNotifyError {
    return sendFailed(this.name, 'EIO', 'write', `: ${written} of ${length} bytes written`)
  }

  sendSync (message: Buffer): void {
    // With koffi loaded, a non-blocking send(2) retried for a short, fixed time, like the koffi transport's.
    const libc = loadedLibc()
    if (libc) {
      let notSocket = false
      const attempt = () => {
        const sent = Number(libc.sendto(this.fd, message, message.length, MSG_DONTWAIT | MSG_NOSIGNAL, null, 0))
        if (sent === message.length) return undefined
        if (sent >= 0) throw this.short(sent, message.length)
        const errno = errnoName(libc.errno())
        notSocket = errno === 'ENOTSOCK' // not a socket after all: plain write(2) below
        return notSocket ? undefined : errno
      }
      const fail = (errno: string) => sendFailed(this.name, errno, 'send', ` on fd ${this.fd}`)
      spinWhileBusy(attempt, fail, syncBudgetMs(this.options))
      if (!notSocket) return
    }
    // Without koffi, writeSync would block the whole process while the manager does not read: refuse when a
    // write is already known to be stuck. Otherwise it may block (Node cannot make a write non-blocking).
    if (this.abandoned) throw this.timeout(0, 'an earlier write is still blocked: the manager is not reading its queue')
    let written: number
    try {
      written = writeSync(this.fd, message)
    } catch (error) {
      throw sendFailed(this.name, (error as NodeJS.ErrnoException).code ?? 'EIO', 'write', ` on fd ${this.fd}`)
    }
    if (written !== message.length) throw this.short(written, message.length)
  }

  close (): void {
    // The descriptor belongs to the process (systemd passed it); keep it open for later notifiers.
  }
}
