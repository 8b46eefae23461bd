// The few libc calls the koffi transport needs, bound lazily: importing koffi and dlopen()ing libc
// costs tens of ms, so it happens on the first real send, never at import time.
import { SdNotifyError } from '../errors.js'

export interface Libc {
  socket(domain: number, type: number, protocol: number): number
  sendmsg(fd: number, msg: object, flags: number): number | bigint
  /** sendto(2) with a Buffer: cheaper to call through koffi than sendmsg's struct when no fds go along. */
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrlen: number): number | bigint
  close(fd: number): number
  pipe2(fds: Int32Array, flags: number): number
  /** fcntl(2) with an int argument (F_GETFD takes none: pass 0). */
  fcntl(fd: number, cmd: number, arg: number): number
  /** pidfd_open(2) (glibc ≥ 2.34); undefined when libc lacks it (musl). */
  pidfdOpen: ((pid: number, flags: number) => number) | undefined
  errno(): number
  /** sizeof(size_t) on this platform, for struct cmsghdr. */
  sizeT: number
}

export const AF_UNIX = 1
export const SOCK_DGRAM = 2
export const SOCK_CLOEXEC = 0o2000000
export const O_CLOEXEC = 0o2000000
export const MSG_DONTWAIT = 0x40
export const MSG_NOSIGNAL = 0x4000
export const F_GETFD = 1
export const F_SETFD = 2
export const FD_CLOEXEC = 1
export const SOL_SOCKET = 1
export const SCM_RIGHTS = 1

let loading: Promise<Libc> | undefined
let loaded: Libc | undefined

export function loadLibc(): Promise<Libc> {
  loading ??= bind().then(
    (libc) => {
      loaded = libc
      for (const fd of pendingCloseOnExec) setCloseOnExec(libc, fd)
      pendingCloseOnExec.clear()
      return libc
    },
    (cause: unknown) => {
      loading = undefined
      const reason = (cause as Error)?.message ?? cause
      throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', `sdnotify: koffi transport unavailable: ${reason}`, {
        transport: 'koffi',
        cause,
      })
    },
  )
  return loading
}

/** libc, if something has loaded it already: for synchronous code that must not load koffi itself (~50 ms). */
export function loadedLibc(): Libc | undefined {
  return loaded
}

const pendingCloseOnExec = new Set<number>()

/**
 * Marks descriptors systemd passed us close-on-exec, as libsystemd's sd_listen_fds() does, so that child
 * processes do not inherit sockets they know nothing about (and keep them open after we close ours).
 * Node has no fcntl(2): only koffi can do this. With koffi loaded, it happens now; otherwise when (if) a
 * transport loads it. Without koffi the descriptors stay inheritable, except those passed to
 * `server.listen({ fd })`, which libuv marks itself.
 */
export function closeOnExec(fds: readonly number[]): void {
  if (loaded) for (const fd of fds) setCloseOnExec(loaded, fd)
  else for (const fd of fds) pendingCloseOnExec.add(fd)
}

function setCloseOnExec(libc: Libc, fd: number): void {
  const flags = libc.fcntl(fd, F_GETFD, 0)
  // A descriptor the application closed since (EBADF) is left alone.
  if (flags >= 0 && (flags & FD_CLOEXEC) === 0) libc.fcntl(fd, F_SETFD, flags | FD_CLOEXEC)
}

interface Koffi {
  load(path: string | null): { func(signature: string): (...args: unknown[]) => unknown }
  struct(name: string, def: Record<string, string>): unknown
  sizeof(type: string): number
  errno(): number
}

async function bind(): Promise<Libc> {
  const imported = (await import('koffi')) as unknown as Koffi & { default?: Koffi }
  const koffi = imported.default ?? imported
  let lib
  try {
    lib = koffi.load('libc.so.6') // glibc
  } catch {
    lib = koffi.load(null) // musl and others: the symbols are already in the process
  }
  koffi.struct('sdnotify_iovec', { iov_base: 'void *', iov_len: 'size_t' })
  koffi.struct('sdnotify_msghdr', {
    msg_name: 'void *',
    msg_namelen: 'uint32_t',
    msg_iov: 'sdnotify_iovec *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  })
  // fcntl(2) is variadic: koffi passes the variadic argument with its type.
  const fcntl = lib.func('int fcntl(int, int, ...)') as (fd: number, cmd: number, type: 'int', arg: number) => number
  let pidfdOpen: Libc['pidfdOpen']
  try {
    pidfdOpen = lib.func('int pidfd_open(int, unsigned int)') as Libc['pidfdOpen']
  } catch {
    pidfdOpen = undefined
  }
  return {
    socket: lib.func('int socket(int, int, int)') as Libc['socket'],
    sendmsg: lib.func('intptr_t sendmsg(int, const sdnotify_msghdr *, int)') as Libc['sendmsg'],
    sendto: lib.func('intptr_t sendto(int, const void *, size_t, int, const void *, uint32_t)') as Libc['sendto'],
    close: lib.func('int close(int)') as Libc['close'],
    pipe2: lib.func('int pipe2(int *, int)') as Libc['pipe2'],
    fcntl: (fd, cmd, arg) => fcntl(fd, cmd, 'int', arg),
    pidfdOpen,
    errno: () => koffi.errno(),
    sizeT: koffi.sizeof('size_t'),
  }
}

/** A struct cmsghdr carrying SCM_RIGHTS for `fds` (CMSG_SPACE-sized, host byte order). */
export function rightsControlMessage(fds: readonly number[], sizeT: number): Buffer {
  const header = sizeT + 8 // cmsg_len (size_t), cmsg_level (int), cmsg_type (int)
  const data = 4 * fds.length
  const space = header + Math.ceil(data / sizeT) * sizeT // CMSG_SPACE: data padded to size_t alignment
  const buf = Buffer.alloc(space)
  const le = Buffer.from(new Uint16Array([1]).buffer)[0] === 1
  const len = header + data // CMSG_LEN
  if (sizeT === 8) {
    if (le) buf.writeBigUInt64LE(BigInt(len), 0)
    else buf.writeBigUInt64BE(BigInt(len), 0)
  } else if (le) buf.writeUInt32LE(len, 0)
  else buf.writeUInt32BE(len, 0)
  const ints = new Int32Array(buf.buffer, buf.byteOffset + sizeT, 2 + fds.length)
  ints[0] = SOL_SOCKET
  ints[1] = SCM_RIGHTS
  fds.forEach((fd, i) => (ints[2 + i] = fd))
  return buf
}
