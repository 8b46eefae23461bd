// The receiving end of a notify socket, as the service manager has it: an AF_UNIX datagram socket read with
// recvmsg(2) through koffi (Node has no AF_UNIX datagram sockets), with SO_PASSCRED (the sender's pid, which
// is how systemd applies NotifyAccess=) and SO_TIMESTAMP (the kernel's arrival time, so that a test whose
// event loop was busy for a while does not see late pings). koffi is loaded only when a receiver is made.
import { MAX_MESSAGE_BYTES, parseNotifySocket, SdNotifyError } from '../index.js'

const AF_UNIX = 1
const SOCK_DGRAM = 2
const SOCK_NONBLOCK = 0o4000
const SOCK_CLOEXEC = 0o2000000
const SOL_SOCKET = 1
const SO_PASSCRED = 16
const SO_TIMESTAMP = 29 // SO_TIMESTAMP_OLD: a struct timeval of two longs (x86-64, arm64, and most others)
const SCM_RIGHTS = 1
const SCM_CREDENTIALS = 2
const MSG_DONTWAIT = 0x40
const MSG_TRUNC = 0x20
const MSG_CMSG_CLOEXEC = 0x40000000 // received descriptors never leak into a child spawned meanwhile
const EAGAIN = 11
const EINTR = 4

/** One datagram as read from the socket. */
export interface RawDatagram {
  bytes: Buffer
  /** Longer than the buffer (the kernel cut it): systemd drops such a datagram. */
  truncated: boolean
  /** How many descriptors came with it (SCM_RIGHTS); they are closed at once. */
  fds: number
  pid: number | undefined
  uid: number | undefined
  /** Arrival time by the kernel (SO_TIMESTAMP), in ms since the epoch like Date.now(). */
  receivedAt: number
}

export interface Receiver {
  /** Reads everything queued now; never blocks. */
  drain(): RawDatagram[]
  close(): void
}

interface Koffi {
  load(path: string | null): { func(signature: string): (...args: unknown[]) => unknown }
  struct(name: string, def: Record<string, string>): unknown
  sizeof(type: string): number
  errno(): number
}

interface Bound {
  koffi: Koffi
  socket(domain: number, type: number, protocol: number): number
  bind(fd: number, addr: Buffer, len: number): number
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number
  recvmsg(fd: number, msg: Msghdr, flags: number): number | bigint
  close(fd: number): number
}

interface Msghdr {
  msg_name: null
  msg_namelen: number
  msg_iov: { iov_base: Buffer; iov_len: number }[]
  msg_iovlen: number
  msg_control: Buffer
  msg_controllen: number | bigint
  msg_flags: number
}

let binding: Promise<Bound> | undefined

function bind (): Promise<Bound> {
  binding ??= (async () => {
    let imported: Koffi & { default?: Koffi }
    try {
      imported = await import('koffi')
    } catch (cause) {
      throw new SdNotifyError(
        'ERR_SDNOTIFY_UNSUPPORTED',
        'sdnotify/testing: fakeManager() reads its socket with koffi, which could not be loaded ' +
          `(${(cause as Error)?.message?.split('\n')[0]}). koffi is an optional dependency of @sdnotify/core: ` +
          'install it (npm install koffi) where the tests run',
        { cause, transport: 'koffi' }
      )
    }
    const koffi = imported.default ?? imported
    let lib
    try {
      lib = koffi.load('libc.so.6') // glibc
    } catch {
      lib = koffi.load(null) // musl and others: the symbols are already in the process
    }
    // Names of their own: koffi refuses a second definition of a struct name (core's transport has its own).
    koffi.struct('sdnotify_testing_iovec', { iov_base: 'void *', iov_len: 'size_t' })
    koffi.struct('sdnotify_testing_msghdr', {
      msg_name: 'void *',
      msg_namelen: 'uint32_t',
      msg_iov: 'sdnotify_testing_iovec *',
      msg_iovlen: 'size_t',
      msg_control: 'void *',
      msg_controllen: 'size_t',
      msg_flags: 'int',
    })
    return {
      koffi,
      socket: lib.func('int socket(int, int, int)') as Bound['socket'],
      bind: lib.func('int bind(int, const void *, uint32_t)') as Bound['bind'],
      setsockopt: lib.func('int setsockopt(int, int, int, const void *, uint32_t)') as Bound['setsockopt'],
      recvmsg: lib.func('intptr_t recvmsg(int, _Inout_ sdnotify_testing_msghdr *, int)') as Bound['recvmsg'],
      close: lib.func('int close(int)') as Bound['close'],
    }
  })().catch((error: unknown) => {
    binding = undefined
    throw error
  })
  return binding
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function readWord (buf: Buffer, offset: number, size: number): number {
  if (size === 8) return Number(LITTLE_ENDIAN ? buf.readBigUInt64LE(offset) : buf.readBigUInt64BE(offset))
  return LITTLE_ENDIAN ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset)
}

function readInt (buf: Buffer, offset: number): number {
  return LITTLE_ENDIAN ? buf.readInt32LE(offset) : buf.readInt32BE(offset)
}

/** Binds `address` (a path or an @abstract name) and returns its reader. */
export async function createReceiver (address: string): Promise<Receiver> {
  const lib = await bind()
  const sizeT = lib.koffi.sizeof('size_t')
  const align = (n: number) => Math.ceil(n / sizeT) * sizeT // CMSG_ALIGN
  const header = align(sizeT + 8) // struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type
  const sockaddr = parseNotifySocket(address)
  if (sockaddr.family !== 'unix') {
    throw new SdNotifyError('ERR_SDNOTIFY_INVALID_SOCKET', `sdnotify/testing: ${address} is not a unix socket address`)
  }
  const fd = lib.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
  const fail = (syscall: string) => {
    const errno = lib.koffi.errno()
    if (fd >= 0) lib.close(fd)
    return new SdNotifyError(
      'ERR_SDNOTIFY_UNSUPPORTED',
      `sdnotify/testing: ${syscall}(${address}) failed with errno ${errno}`,
      { syscall }
    )
  }
  if (fd < 0) throw fail('socket')
  const one = Buffer.from(new Int32Array([1]).buffer) // an int 1 in host byte order
  if (lib.setsockopt(fd, SOL_SOCKET, SO_PASSCRED, one, 4) !== 0) throw fail('setsockopt SO_PASSCRED')
  if (lib.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, one, 4) !== 0) throw fail('setsockopt SO_TIMESTAMP')
  if (lib.bind(fd, sockaddr.sockaddr, sockaddr.sockaddr.length) !== 0) throw fail('bind')

  // One byte more than the manager accepts, so that an oversized datagram shows as such (MSG_TRUNC too).
  const data = Buffer.alloc(MAX_MESSAGE_BYTES + 1)
  // Room for 253 descriptors (the most one message may carry), credentials and a timestamp.
  const control = Buffer.alloc(2048)
  let open = true

  const parseControl = (length: number, out: RawDatagram): void => {
    for (let offset = 0; offset + header <= length;) {
      const cmsgLen = readWord(control, offset, sizeT)
      if (cmsgLen < header || offset + cmsgLen > length) break
      const level = readInt(control, offset + sizeT)
      const type = readInt(control, offset + sizeT + 4)
      const body = offset + header
      if (level === SOL_SOCKET && type === SCM_RIGHTS) {
        for (let at = body; at + 4 <= offset + cmsgLen; at += 4) {
          lib.close(readInt(control, at)) // the test only needs the count; an open fd would leak
          out.fds++
        }
      } else if (level === SOL_SOCKET && type === SCM_CREDENTIALS && cmsgLen - header >= 12) {
        out.pid = readInt(control, body)
        out.uid = readInt(control, body + 4) >>> 0
      } else if (level === SOL_SOCKET && type === SO_TIMESTAMP && cmsgLen - header >= 2 * sizeT) {
        out.receivedAt = readWord(control, body, sizeT) * 1000 + readWord(control, body + sizeT, sizeT) / 1000
      }
      offset += align(cmsgLen)
    }
  }

  return {
    drain () {
      const out: RawDatagram[] = []
      if (!open) return out
      for (;;) {
        const msg: Msghdr = {
          msg_name: null,
          msg_namelen: 0,
          msg_iov: [{ iov_base: data, iov_len: data.length }],
          msg_iovlen: 1,
          msg_control: control,
          msg_controllen: control.length,
          msg_flags: 0,
        }
        const n = Number(lib.recvmsg(fd, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC))
        if (n < 0) {
          const errno = lib.koffi.errno()
          if (errno === EINTR) continue
          if (errno === EAGAIN) break
          throw new SdNotifyError(
            'ERR_SDNOTIFY_UNSUPPORTED',
            `sdnotify/testing: recvmsg(${address}) failed with errno ${errno}`,
            { syscall: 'recvmsg' }
          )
        }
        const datagram: RawDatagram = {
          bytes: Buffer.from(data.subarray(0, Math.min(n, data.length))),
          truncated: n > MAX_MESSAGE_BYTES || (msg.msg_flags & MSG_TRUNC) !== 0,
          fds: 0,
          pid: undefined,
          uid: undefined,
          receivedAt: Date.now(),
        }
        parseControl(Number(msg.msg_controllen), datagram)
        out.push(datagram)
      }
      return out
    },
    close () {
      if (!open) return
      open = false
      lib.close(fd)
    },
  }
}
