// The few libc calls core needs (the koffi transport, close-on-exec for passed descriptors, inspecting a passed
// socket), bound once for the whole process and lazily: importing koffi and dlopen()ing libc costs tens of ms,
// so it happens on the first real send or inspection, never at import time.
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
  getsockname(fd: number, address: Buffer, length: Uint32Array): number
  getsockopt(fd: number, level: number, name: number, value: Int32Array, length: Uint32Array): number
  /** pidfd_open(2) (glibc ≥ 2.36); undefined when the libc lacks the wrapper. */
  pidfdOpen: ((pid: number, flags: number) => number) | undefined
  /** memfd_create(2) (glibc ≥ 2.27): the journal's large-entry path (sealed with fcntl F_ADD_SEALS). */
  memfdCreate(name: string, flags: number): number
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
export const AF_INET = 2
export const AF_INET6 = 10
export const SOCK_STREAM = 1
export const SO_TYPE = 3
export const SO_ACCEPTCONN = 30

let loading: Promise<Libc> | undefined
let loaded: Libc | undefined

/** Loads koffi and binds libc (once per process); rejects with ERR_SDNOTIFY_UNSUPPORTED when that is impossible. */
export function loadLibc (): Promise<Libc> {
  loading ??= Promise.resolve().then(loadLibcSync)
  // A failed load is tried again by the next caller (koffi may be installed meanwhile).
  return loading.catch((error: unknown) => {
    loading = undefined
    throw error
  })
}

/**
 * loadLibc(), synchronously: for code that must answer now (inspecting a passed socket before the framework
 * listens). The same binding either way, so the pending close-on-exec marks are applied whichever loads first.
 */
export function loadLibcSync (): Libc {
  if (loaded) return loaded
  let libc: Libc
  try {
    libc = bind()
  } catch (cause) {
    const reason = (cause as Error)?.message ?? cause
    throw new SdNotifyError('ERR_SDNOTIFY_UNSUPPORTED', `sdnotify: koffi transport unavailable: ${reason}`, {
      transport: 'koffi',
      cause,
    })
  }
  loaded = libc
  for (const [fd, identity] of pendingCloseOnExec) if (sameFile(fd, identity)) setCloseOnExec(libc, fd)
  pendingCloseOnExec.clear()
  return libc
}

/** libc, if something has loaded it already: for synchronous code that must not load koffi itself (~50 ms). */
export function loadedLibc (): Libc | undefined {
  return loaded
}

/** Which file a descriptor refers to: fstat(2)'s device and inode. */
type FileIdentity = { dev: bigint; ino: bigint }

function identify (fd: number): FileIdentity | undefined {
  try {
    const { dev, ino } = process.getBuiltinModule('node:fs').fstatSync(fd, { bigint: true })
    return { dev, ino }
  } catch {
    return undefined // closed already (EBADF)
  }
}

function sameFile (fd: number, identity: FileIdentity): boolean {
  const now = identify(fd)
  return now !== undefined && now.dev === identity.dev && now.ino === identity.ino
}

/** Descriptors to mark once koffi loads, with the file each referred to when it was recorded. */
const pendingCloseOnExec = new Map<number, FileIdentity>()

/**
 * Marks descriptors systemd passed us close-on-exec, as libsystemd's sd_listen_fds() does, so that child
 * processes do not inherit sockets they know nothing about (and keep them open after we close ours).
 * Node (20 to 26) marks descriptors 0 to 16 itself at start-up (fcntl F_SETFD on each, seen with strace); Bun
 * 1.4 does not. Node has no fcntl(2) for the others: only koffi can do this. With koffi loaded, it happens now;
 * otherwise when (if) a transport or a socket inspection loads it, and then only if the number still refers to
 * the file it referred to now (same device and inode): the application may have closed an unused descriptor
 * meanwhile and the number been reused for something it means its children to inherit. Without koffi the
 * descriptors above 16 stay inheritable, except those passed to `server.listen({ fd })`, which libuv marks.
 */
export function closeOnExec (fds: readonly number[]): void {
  for (const fd of fds) {
    if (loaded) setCloseOnExec(loaded, fd)
    else {
      const identity = identify(fd)
      if (identity) pendingCloseOnExec.set(fd, identity)
    }
  }
}

/**
 * Before spawning a child process: marks the pending descriptors now (loading koffi if any are pending). Never
 * rejects: without koffi they stay inheritable, as documented above.
 */
export async function applyCloseOnExec (): Promise<void> {
  if (pendingCloseOnExec.size > 0) await loadLibc().catch(() => undefined)
}

function setCloseOnExec (libc: Libc, fd: number): void {
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

function bind (): Libc {
  // require(), not import(): the synchronous loader needs it, and koffi's CommonJS and ES entry points load the
  // same native addon (one struct registry): one binding per process either way.
  const { createRequire } = process.getBuiltinModule('node:module')
  const koffi = createRequire(import.meta.url)('koffi') as Koffi
  let lib
  try {
    lib = koffi.load('libc.so.6') // glibc
  } catch { /* c8 ignore start: without glibc only (musl…); this machine and the Debian root have glibc */
    lib = koffi.load(null) // musl and others: the symbols are already in the process
  } /* c8 ignore stop */
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
  } catch { /* c8 ignore start: glibc < 2.36 lacks pidfd_open; this machine has 2.36, the Debian root 2.41 */
    pidfdOpen = undefined
  } /* c8 ignore stop */
  return {
    socket: lib.func('int socket(int, int, int)') as Libc['socket'],
    sendmsg: lib.func('intptr_t sendmsg(int, const sdnotify_msghdr *, int)') as Libc['sendmsg'],
    sendto: lib.func('intptr_t sendto(int, const void *, size_t, int, const void *, uint32_t)') as Libc['sendto'],
    close: lib.func('int close(int)') as Libc['close'],
    pipe2: lib.func('int pipe2(int *, int)') as Libc['pipe2'],
    getsockname: lib.func('int getsockname(int, void *, void *)') as Libc['getsockname'],
    getsockopt: lib.func('int getsockopt(int, int, int, void *, void *)') as Libc['getsockopt'],
    fcntl: (fd, cmd, arg) => fcntl(fd, cmd, 'int', arg),
    pidfdOpen,
    memfdCreate: lib.func('int memfd_create(const char *, unsigned int)') as Libc['memfdCreate'],
    errno: () => koffi.errno(),
    sizeT: koffi.sizeof('size_t'),
  }
}

/** A struct cmsghdr carrying SCM_RIGHTS for `fds` (CMSG_SPACE-sized, host byte order). */
export function rightsControlMessage (fds: readonly number[], sizeT: number): Buffer {
  const header = sizeT + 8 // cmsg_len (size_t), cmsg_level (int), cmsg_type (int)
  const data = 4 * fds.length
  const space = header + Math.ceil(data / sizeT) * sizeT // CMSG_SPACE: data padded to size_t alignment
  const buf = Buffer.alloc(space)
  const le = Buffer.from(new Uint16Array([1]).buffer)[0] === 1
  const len = header + data // CMSG_LEN
  if (sizeT === 8) {
    if (le) buf.writeBigUInt64LE(BigInt(len), 0)
    /* c8 ignore next: big-endian hosts only (this machine is x86_64) */
    else buf.writeBigUInt64BE(BigInt(len), 0)
  } else if (le) buf.writeUInt32LE(len, 0)
  /* c8 ignore next: big-endian hosts only (this machine is x86_64) */
  else buf.writeUInt32BE(len, 0)
  const ints = new Int32Array(buf.buffer, buf.byteOffset + sizeT, 2 + fds.length)
  ints[0] = SOL_SOCKET
  ints[1] = SCM_RIGHTS
  fds.forEach((fd, i) => (ints[2 + i] = fd))
  return buf
}
