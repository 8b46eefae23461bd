// In-process send through the `unix-dgram` native addon (needs node-gyp at install time).
// Its socket is non-blocking: on a full queue send() reports "congestion" and the datagram is NOT sent,
// so we wait for its 'writable' event and send again. It cannot reach abstract names (strncpy into
// sun_path) and cannot pass descriptors.
import type { UnixAddress } from '../address.js'
import { SdNotifyError } from '../errors.js'
import { errnoName, sendFailed } from '../system-errors.js'
import type { Transport, TransportOptions } from './transport.js'

interface DgramSocket {
  connect(path: string): void
  send(buf: Buffer, callback: (error?: Error & { code?: number | string }) => void): void
  close(): void
  on(event: 'error', listener: (error: Error & { code?: number }) => void): void
  once(event: 'writable', listener: () => void): void
  removeListener(event: 'writable', listener: () => void): void
}
interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): DgramSocket
}

// A variable specifier: the package ships no usable type declarations, and stays an optional dependency.
const UNIX_DGRAM = 'unix-dgram'
let loading: Promise<UnixDgramModule> | undefined
function loadUnixDgram (): Promise<UnixDgramModule> {
  loading ??= import(UNIX_DGRAM).then(
    (m: { default?: UnixDgramModule }) => m.default ?? (m as unknown as UnixDgramModule),
    (cause: unknown) => {
      loading = undefined
      const message = `sdnotify: unix-dgram transport unavailable: ${(cause as Error)?.message ?? cause}`
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', message, {
        transport: 'unix-dgram',
        cause,
      })
    }
  )
  return loading
}

export class UnixDgramTransport implements Transport {
  readonly name = 'unix-dgram' as const
  readonly capabilities = { fdPassing: false, abstractNames: false, ownPid: true }
  private readonly address: UnixAddress
  private readonly options: TransportOptions
  private socket: DgramSocket | undefined
  private inFlight = 0

  constructor (address: UnixAddress, options: TransportOptions) {
    if (address.abstract) {
      const message = 'sdnotify: unix-dgram cannot reach abstract socket names'
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', message, { transport: 'unix-dgram' })
    }
    this.address = address
    this.options = options
  }

  private module: UnixDgramModule | undefined

  async load (): Promise<void> {
    this.module ??= await loadUnixDgram()
  }

  async send (message: Buffer): Promise<void> {
    const dgram = await loadUnixDgram()
    this.inFlight++
    try {
      const socket = this.open(dgram)
      const deadline = performance.now() + this.options.sendTimeoutMs
      while (!(await this.sendOnce(socket, message, deadline))) {
        /* congestion: waited for 'writable', try again */
      }
    } finally {
      // The addon keeps a referenced uv_poll handle while the socket is open, which would keep the
      // host process alive forever: close as soon as nothing is in flight.
      if (--this.inFlight === 0) this.close()
    }
  }

  sendSync (message: Buffer): void {
    if (!this.module) {
      const message = 'sdnotify: unix-dgram is not loaded yet: call notifier.prepare() first'
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', message, { transport: this.name })
    }
    if (!this.sendNow(this.module, message)) throw sendFailed(this.name, 'EAGAIN', 'send', ` to ${this.address.path}`)
  }

  /** The notifier's fast path: one send now, no async hop. false: not loaded, or congested (retry queued). */
  trySend (message: Buffer): boolean {
    return this.module !== undefined && this.inFlight === 0 && this.sendNow(this.module, message)
  }

  /** One synchronous send. true: sent; false: congested (not sent). Throws on errors. */
  private sendNow (dgram: UnixDgramModule, message: Buffer): boolean {
    const socket = this.open(dgram)
    let sent = false
    let failure: Error | undefined
    try {
      // The addon calls back synchronously: an error, a congestion (code 1), or nothing.
      socket.send(message, (error) => {
        if (!error) sent = true
        else if (error.code !== 1) {
          failure = sendFailed(this.name, errnoName(Number(error.code)), 'send', ` to ${this.address.path}`)
        }
      })
    } finally {
      if (this.inFlight === 0) this.close()
    }
    if (failure) throw failure
    return sent
  }

  private open (dgram: UnixDgramModule): DgramSocket {
    if (this.socket) return this.socket
    const socket = dgram.createSocket('unix_dgram')
    let connectError: (Error & { code?: number }) | undefined
    socket.on('error', (error: Error & { code?: number }) => (connectError = error))
    // Connected, so that 'writable' waits for room in the manager's queue (Linux unix_dgram_poll).
    socket.connect(this.address.path)
    if (connectError) {
      socket.close()
      throw sendFailed(this.name, errnoName(Number(connectError.code)), 'connect', ` to ${this.address.path}`)
    }
    this.socket = socket
    return socket
  }

  /** true: sent; false: congested and now writable again. Throws on errors and on timeout. */
  private sendOnce (socket: DgramSocket, message: Buffer, deadline: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      socket.send(message, (error) => {
        if (!error) return resolve(true)
        if (error.code !== 1) {
          return reject(sendFailed(this.name, errnoName(Number(error.code)), 'send', ` to ${this.address.path}`))
        }
        const remaining = deadline - performance.now()
        const onWritable = () => {
          clearTimeout(timer)
          resolve(false)
        }
        const timer = setTimeout(() => {
          socket.removeListener('writable', onWritable)
          const message =
            `sdnotify: unix-dgram transport: the manager's queue stayed full for ${this.options.sendTimeoutMs} ms`
          reject(new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', message, {
            transport: this.name,
            errno: 'EAGAIN',
            syscall: 'send',
          }))
        }, Math.max(0, remaining))
        socket.once('writable', onWritable)
      })
    })
  }

  close (): void {
    const socket = this.socket
    this.socket = undefined
    socket?.close()
  }
}
