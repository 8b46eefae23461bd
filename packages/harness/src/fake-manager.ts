// A stand-in for the manager's notify socket, for unit tests: a bound AF_UNIX datagram socket read with
// recvmsg(2) through koffi, so that passed descriptors (SCM_RIGHTS) are seen too.
import koffi from 'koffi'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const libc = koffi.load('libc.so.6')
koffi.struct('fm_iovec', { iov_base: 'void *', iov_len: 'size_t' })
koffi.struct('fm_msghdr', {
  msg_name: 'void *',
  msg_namelen: 'uint32_t',
  msg_iov: 'fm_iovec *',
  msg_iovlen: 'size_t',
  msg_control: 'void *',
  msg_controllen: 'size_t',
  msg_flags: 'int',
})
const socket = libc.func('int socket(int, int, int)')
const bind = libc.func('int bind(int, const void *, uint32_t)')
const recvmsg = libc.func('intptr_t recvmsg(int, _Inout_ fm_msghdr *, int)')
const close = libc.func('int close(int)')
/** struct sockaddr_un for a path or an @abstract name (kept apart from @sdnotify/core, which tests against it). */
function sockaddrUn (address: string): Buffer {
  const name = Buffer.from(address)
  const abstract = address.startsWith('@')
  const buf = Buffer.alloc(2 + name.length + (abstract ? 0 : 1))
  buf.writeUInt16LE(1, 0) // AF_UNIX
  name.copy(buf, 2)
  if (abstract) buf[2] = 0
  return buf
}

const SOCK_NONBLOCK = 0o4000
const SOCK_CLOEXEC = 0o2000000

export interface Received {
  text: string
  fds: number[]
}

export interface FakeManager {
  /** The value for NOTIFY_SOCKET. */
  address: string
  messages: Received[]
  /** Stop reading: the queue fills and senders get EAGAIN. */
  pause(): void
  resume(): void
  /** Resolves once `count` messages have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>
  close(): void
  closeFd(fd: number): void
}

export function fakeManager (options: { abstract?: boolean } = {}): FakeManager {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-fake-'))
  const address = options.abstract
    ? `@sdnotify-fake-${process.pid}-${Math.random().toString(36).slice(2)}`
    : join(dir, 'notify')
  const fd = socket(1, 2 | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number
  const sockaddr = sockaddrUn(address)
  if (bind(fd, sockaddr, sockaddr.length) !== 0) throw new Error(`bind failed: errno ${koffi.errno()}`)
  const messages: Received[] = []
  let paused = false
  const drain = () => {
    if (paused) return
    for (;;) {
      const data = Buffer.alloc(8192)
      const control = Buffer.alloc(256)
      const msg = {
        msg_name: null,
        msg_namelen: 0,
        msg_iov: [{ iov_base: data, iov_len: data.length }],
        msg_iovlen: 1,
        msg_control: control,
        msg_controllen: control.length,
        msg_flags: 0,
      }
      const n = Number(recvmsg(fd, msg, 0x40))
      if (n < 0) return
      const fds: number[] = []
      // One SCM_RIGHTS cmsghdr at most: cmsg_len (size_t), level, type, then the ints.
      const controlLength = Number(msg.msg_controllen)
      if (controlLength >= 16) {
        const length = Number(control.readBigUInt64LE(0))
        if (control.readInt32LE(8) === 1 && control.readInt32LE(12) === 1) {
          for (let off = 16; off < length; off += 4) fds.push(control.readInt32LE(off))
        }
      }
      messages.push({ text: data.subarray(0, n).toString('utf8'), fds })
    }
  }
  const timer = setInterval(drain, 1)
  return {
    address,
    messages,
    pause: () => (paused = true),
    resume: () => (paused = false),
    async waitFor (count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (messages.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`fake manager: ${messages.length} of ${count} messages after ${timeoutMs} ms`)
        }
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
      return messages
    },
    close () {
      clearInterval(timer)
      close(fd)
      rmSync(dir, { recursive: true, force: true })
    },
    closeFd: (n) => { close(n) },
  }
}
