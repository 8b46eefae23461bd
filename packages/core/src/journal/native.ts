// The journal's native socket through koffi (the same libc binding as the notify transports): sendto(2) with
// MSG_DONTWAIT to journald's path, for an entry that fits a datagram; otherwise, as libsystemd's
// sd_journal_sendv() does, the entry goes into a sealed memfd whose descriptor is sent alone with SCM_RIGHTS
// (journald mmaps it).
import { closeSync, writeSync } from 'node:fs'
import { constants } from 'node:os'
import { internalLoadLibc, internalRightsControlMessage, parseNotifySocket, SdNotifyError } from '../index.js'
import type { UnixAddress } from '../index.js'

type Libc = Awaited<ReturnType<typeof internalLoadLibc>>

/** Where journald listens for native entries (systemd-journald.service(8)). */
export const JOURNAL_SOCKET = '/run/systemd/journal/socket'

const AF_UNIX = 1
const SOCK_DGRAM = 2
const SOCK_CLOEXEC = 0o2000000
const MSG_DONTWAIT = 0x40
const MSG_NOSIGNAL = 0x4000
const MFD_CLOEXEC = 1
const MFD_ALLOW_SEALING = 2
const F_ADD_SEALS = 1033 // F_LINUX_SPECIFIC_BASE + 9
// memfd_set_sealed() in systemd: journald maps only a memfd nobody can change any more.
const ALL_SEALS = 1 | 2 | 4 | 8 // F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE

const errnoNames = new Map<number, string>()
for (const [name, value] of Object.entries(constants.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name)
const errnoName = (errno: number) => errnoNames.get(Math.abs(errno)) ?? `errno ${Math.abs(errno)}`

/** The receiver's queue (or our send buffer) is full: try again later. */
export function isBusy (errno: string): boolean {
  return errno === 'EAGAIN' || errno === 'EWOULDBLOCK' || errno === 'ENOBUFS' || errno === 'EINTR'
}

/** One entry on its way: the encoded bytes, and its sealed memfd once one was made (kept across EAGAIN retries). */
export interface PendingEntry {
  data: Buffer
  memfd?: number
}

export class JournalSocket {
  readonly path: string
  private readonly address: UnixAddress
  private libc: Libc | undefined
  private fd = -1
  /** Entries sent through a memfd: the large-entry path. */
  memfdSends = 0

  constructor (path: string = JOURNAL_SOCKET) {
    const address = parseNotifySocket(path)
    if (address.family !== 'unix') {
      const rule = 'must be a unix socket path'
      const message = `sdnotify: option socket ${rule}`
      throw new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', message, { field: 'socket', rule })
    }
    this.address = address
    this.path = path
  }

  get loaded (): boolean {
    return this.libc !== undefined
  }

  /** Loads koffi and libc (tens of ms, once per process); rejects with ERR_SDNOTIFY_UNSUPPORTED without them. */
  async load (): Promise<void> {
    this.libc ??= await internalLoadLibc()
  }

  /** One non-blocking try: undefined when journald has the entry, else the errno name. Call load() first. */
  trySend (entry: PendingEntry): string | undefined {
    const libc = this.libc
    if (!libc) return 'ENOTCONN'
    const fd = this.descriptor(libc)
    if (fd < 0) return errnoName(libc.errno())
    if (entry.memfd === undefined) {
      const errno = this.sendDatagram(libc, fd, entry.data)
      // Larger than a datagram may be (the socket's send buffer, ~208 KiB by default): the memfd path.
      if (errno !== 'EMSGSIZE') return errno
      const made = this.makeMemfd(libc, entry.data)
      if (typeof made === 'string') return made
      entry.memfd = made
    }
    return this.sendMemfd(libc, fd, entry)
  }

  /**
   * One datagram to journald, addressed by path on every call, as libsystemd does. A connected socket would save
   * the path lookup (about 1 µs a line) but keeps sending to an old journald socket that is unlinked and bound
   * anew while something still holds the old one open: those entries would be lost without an error.
   */
  private sendDatagram (libc: Libc, fd: number, data: Buffer): string | undefined {
    const sockaddr = this.address.sockaddr
    const sent = Number(libc.sendto(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, sockaddr, sockaddr.length))
    if (sent === data.length) return undefined
    if (sent >= 0) return 'EMSGSIZE'
    return errnoName(libc.errno())
  }

  /** Closes an entry's memfd (after sending it, or when the entry is given up). */
  release (entry: PendingEntry): void {
    if (entry.memfd === undefined) return
    try {
      closeSync(entry.memfd)
    } catch {
      /* already closed */
    }
    entry.memfd = undefined
  }

  private makeMemfd (libc: Libc, data: Buffer): number | string {
    const memfd = libc.memfdCreate('journal-entry', MFD_CLOEXEC | MFD_ALLOW_SEALING)
    if (memfd < 0) return errnoName(libc.errno())
    try {
      for (let offset = 0; offset < data.length;) offset += writeSync(memfd, data, offset, data.length - offset)
    } catch (error) {
      closeSync(memfd)
      return (error as NodeJS.ErrnoException).code ?? 'EIO'
    }
    if (libc.fcntl(memfd, F_ADD_SEALS, ALL_SEALS) < 0) {
      const errno = errnoName(libc.errno())
      closeSync(memfd)
      return errno
    }
    return memfd
  }

  private sendMemfd (libc: Libc, fd: number, entry: PendingEntry): string | undefined {
    const control = internalRightsControlMessage([entry.memfd as number], libc.sizeT)
    const sockaddr = this.address.sockaddr
    // The descriptor alone, no payload: journald takes a datagram with one fd and no data as a memfd entry.
    const msghdr = {
      msg_name: sockaddr,
      msg_namelen: sockaddr.length,
      msg_iov: null,
      msg_iovlen: 0,
      msg_control: control,
      msg_controllen: control.length,
      msg_flags: 0,
    }
    const sent = Number(libc.sendmsg(fd, msghdr, MSG_DONTWAIT | MSG_NOSIGNAL))
    if (sent < 0) return errnoName(libc.errno())
    this.memfdSends++
    this.release(entry) // journald has its own reference now
    return undefined
  }

  private descriptor (libc: Libc): number {
    if (this.fd < 0) this.fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)
    return this.fd
  }

  close (): void {
    if (this.fd < 0 || !this.libc) return
    this.libc.close(this.fd)
    this.fd = -1
  }
}

/** The error for a send journald did not take (ENOENT: no journald; EACCES: not allowed to write its socket). */
export function journalSendFailed (errno: string, path: string): SdNotifyError {
  const hint = errno === 'ENOENT' || errno === 'ECONNREFUSED' ? ' (is systemd-journald running?)' : ''
  const message = `sdnotify: journal: send to ${path} failed with ${errno}${hint}`
  return new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', message, {
    transport: 'koffi',
    errno,
    syscall: 'sendto',
  })
}
