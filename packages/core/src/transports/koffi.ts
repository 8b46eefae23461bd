// In-process sendmsg(2) through koffi (a prebuilt FFI: no compiler, loads with install scripts blocked).
// The datagram comes from our own PID, so the default NotifyAccess=main accepts it; SCM_RIGHTS gives
// FDSTORE and BARRIER; an explicit sockaddr reaches abstract names.
import { createReadStream, type ReadStream } from 'node:fs'
import { Socket } from 'node:net'
import type { UnixAddress } from '../address.js'
import { SdNotifyError } from '../errors.js'
import { errnoName, isTransient, retryWhileBusy, sendFailed, spinWhileBusy } from '../system-errors.js'
import {
  AF_UNIX,
  closeOnExec,
  type Libc,
  loadedLibc,
  loadLibc,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  O_CLOEXEC,
  rightsControlMessage,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
} from './libc.js'
import { syncBudgetMs, type Transport, type TransportOptions } from './transport.js'

/** Either an address to send to, or a descriptor already connected to the notify socket (OpenFile=). */
export type KoffiTarget = { address: UnixAddress } | { connectedFd: number }

export class KoffiTransport implements Transport {
  readonly name = 'koffi' as const
  readonly capabilities = { fdPassing: true, abstractNames: true, ownPid: true }
  private readonly target: KoffiTarget
  private readonly options: TransportOptions
  private socketFd = -1
  /** send() calls under way (barrier() included): close() waits for them. */
  private sending = 0
  private closeRequested = false

  constructor (target: KoffiTarget, options: TransportOptions) {
    this.target = target
    this.options = options
  }

  /** Loads koffi and libc now; rejects with ERR_SDNOTIFY_UNSUPPORTED when that is impossible here. */
  async load (): Promise<void> {
    this.libc ??= await loadLibc()
    // The OpenFile= notify socket is ours alone: like sd_listen_fds(3), keep it from child processes.
    if ('connectedFd' in this.target) closeOnExec([this.target.connectedFd])
  }

  private libc: Libc | undefined

  async send (message: Buffer, fds: readonly number[] = []): Promise<void> {
    const libc = (this.libc ??= await loadLibc())
    this.sending++
    try {
      const attempt = this.attempt(libc, message, fds)
      await retryWhileBusy(attempt, (errno) => this.failure(errno, attempt.syscall), this.options.sendTimeoutMs)
    } finally {
      if (--this.sending === 0 && this.closeRequested) this.close()
    }
  }

  sendSync (message: Buffer): void {
    if (!this.libc) {
      const message = 'sdnotify: koffi is not loaded yet: call notifier.prepare() first'
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', message, { transport: this.name })
    }
    const attempt = this.attempt(this.libc, message, [])
    spinWhileBusy(attempt, (errno) => this.failure(errno, attempt.syscall), syncBudgetMs(this.options))
  }

  trySend (message: Buffer): boolean {
    if (!this.libc) return false
    const attempt = this.attempt(this.libc, message, [])
    const errno = attempt()
    if (errno === undefined) return true
    if (isTransient(errno)) return false
    throw this.failure(errno, attempt.syscall)
  }

  private failure (errno: string, syscall: string): SdNotifyError {
    return sendFailed(this.name, errno, syscall, 'address' in this.target ? ` to ${this.target.address.path}` : '')
  }

  /** One send try: undefined when sent, else the errno name. */
  private attempt (
    libc: Libc,
    message: Buffer,
    fds: readonly number[]
  ): (() => string | undefined) & { syscall: string } {
    const fd = this.descriptor(libc)
    const address = 'address' in this.target ? this.target.address.sockaddr : null
    // MSG_DONTWAIT: a full queue gives EAGAIN (retried with back-off) instead of blocking the event loop.
    const flags = MSG_DONTWAIT | MSG_NOSIGNAL
    const result = (sent: number | bigint) => {
      const n = Number(sent)
      if (n === message.length) return undefined
      return n >= 0 ? 'EMSGSIZE' : errnoName(libc.errno())
    }
    if (fds.length === 0) {
      const sendto = () => result(libc.sendto(fd, message, message.length, flags, address, address?.length ?? 0))
      return Object.assign(sendto, { syscall: 'sendto' })
    }
    const control = rightsControlMessage(fds, libc.sizeT)
    const msghdr = {
      msg_name: address,
      msg_namelen: address?.length ?? 0,
      msg_iov: [{ iov_base: message, iov_len: message.length }],
      msg_iovlen: 1,
      msg_control: control,
      msg_controllen: control.length,
      msg_flags: 0,
    }
    return Object.assign(() => result(libc.sendmsg(fd, msghdr, flags)), { syscall: 'sendmsg' })
  }

  /**
   * sd_notify_barrier(3): send BARRIER=1 with the write end of a pipe, close our copy, and wait for the
   * manager to close its copy (EOF on the read end): it has then processed every earlier message.
   */
  async barrier (timeoutMs: number): Promise<void> {
    const libc = await loadLibc()
    const pipe = new Int32Array(2)
    if (libc.pipe2(pipe, O_CLOEXEC) !== 0) throw sendFailed(this.name, errnoName(libc.errno()), 'pipe2')
    const [readFd, writeFd] = [pipe[0] as number, pipe[1] as number]
    let reader: Socket | ReadStream
    try {
      await this.send(Buffer.from('BARRIER=1'), [writeFd])
      reader = pipeReader(readFd)
    } catch (cause) {
      // Not sent (or not watchable): nothing will ever close the read end for us.
      libc.close(readFd)
      throw cause
    } finally {
      // Ours is closed either way: once sent, the manager holds the only other copy (its close is the ack).
      libc.close(writeFd)
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reader.destroy()
        const message = `sdnotify: barrier not acknowledged within ${timeoutMs} ms`
        reject(new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', message, { transport: this.name }))
      }, timeoutMs)
      reader.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      reader.on('error', () => reader.destroy())
      reader.resume()
    })
  }

  private descriptor (libc: Libc): number {
    if ('connectedFd' in this.target) return this.target.connectedFd
    if (this.socketFd < 0) {
      const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)
      if (fd < 0) throw sendFailed(this.name, errnoName(libc.errno()), 'socket')
      this.socketFd = fd
    }
    return this.socketFd
  }

  /**
   * Closes the socket, once no send() is under way: one still retrying (retryWhileBusy sleeps between tries,
   * within its time limit) holds the descriptor number, and would otherwise write to a closed descriptor, or
   * to whatever file or socket reused the number meanwhile.
   */
  close (): void {
    if (this.sending > 0) {
      this.closeRequested = true
      return
    }
    this.closeRequested = false
    if (this.socketFd < 0) return
    const fd = this.socketFd
    this.socketFd = -1
    const libc = this.libc ?? loadedLibc() // the socket was made through libc: it is loaded
    libc?.close(fd)
  }
}

/**
 * Watches a pipe's read end for EOF. Node: a net.Socket (libuv polls the pipe; a fs read stream would hold a
 * thread-pool thread in a blocking read until the manager closes its copy). Bun 1.4's net.Socket never reports
 * EOF on a pipe, its fs read stream does (measured by the runtime matrix, scripts/runtime-matrix.mjs).
 */
function pipeReader (fd: number): Socket | ReadStream {
  if (process.versions.bun !== undefined) return createReadStream('', { fd })
  return new Socket({ fd, readable: true, writable: false })
}
