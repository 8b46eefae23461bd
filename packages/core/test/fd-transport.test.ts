// Issue 14: the fd transport (OpenFile= notify socket) without koffi in core: sendSync is then a plain write(2).
// Nothing in this file may load core's libc binding (loadLibc): the descriptors here are made through a koffi
// binding of the test's own.
import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseNotifySocket, type UnixAddress } from '../src/address.js'
import { FdTransport } from '../src/transports/fd.js'
import { loadedLibc } from '../src/transports/libc.js'
import { fakeManager } from '../src/testing.js'

const koffi = (await import('koffi')).default
const libc = koffi.load('libc.so.6')
const socket = libc.func('int socket(int, int, int)')
const connect = libc.func('int connect(int, const void *, uint32_t)')
const socketpair = libc.func('int socketpair(int, int, int, int *)')
const send = libc.func('intptr_t send(int, const void *, size_t, int)')
const recv = libc.func('intptr_t recv(int, void *, size_t, int)')
const MSG_DONTWAIT = 0x40
const SOCK_CLOEXEC = 0o2000000

t.before(() => {
  if (loadedLibc() !== undefined) throw new Error('core loaded koffi: this file tests the path without it')
})

t.test('sendSync without koffi: write(2) to the connected socket; a bad descriptor names EBADF', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const fd = socket(1, 2 | SOCK_CLOEXEC, 0) as number
  const address = parseNotifySocket(fake.address) as UnixAddress
  t.equal(connect(fd, address.sockaddr, address.sockaddr.length), 0)
  const transport = new FdTransport(fd, { sendTimeoutMs: 1000 })
  transport.sendSync(Buffer.from('STOPPING=1\nSTATUS=last words'))
  t.equal(loadedLibc(), undefined, 'sent without koffi')
  await fake.waitFor({ STOPPING: '1' })
  t.same(fake.datagrams.map((d) => d.text), ['STOPPING=1\nSTATUS=last words'])
  closeSync(fd)
  t.throws(() => transport.sendSync(Buffer.from('X=1')), {
    code: 'ERR_SDNOTIFY_SEND_FAILED',
    transport: 'fd',
    errno: 'EBADF',
    syscall: 'write',
    message: new RegExp(`write failed with EBADF on fd ${fd}`),
  })
})

// connect_unix_harder() may hand over a SOCK_STREAM socket, where a write may take part of the message only.
// A FIFO opened non-blocking does the same: 64 KiB fit, the rest does not. Reported, never taken as sent.
t.test('a short write is an error naming how much was written, on both paths', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-fifo-'))
  const fifo = join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
  t.teardown(() => {
    closeSync(writer)
    closeSync(reader)
    rmSync(dir, { recursive: true, force: true })
  })
  /** Reads everything in the FIFO now (non-blocking): how many bytes. */
  const readAll = () => {
    let total = 0
    const buffer = Buffer.alloc(65536)
    try {
      for (let n; (n = readSync(reader, buffer)) > 0;) total += n
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error
    }
    return total
  }
  const transport = new FdTransport(writer, { sendTimeoutMs: 1000 })
  const message = Buffer.alloc(200_000, 'X')
  const short = { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'fd', errno: 'EIO', syscall: 'write' }
  await t.rejects(transport.send(message), { ...short, message: /: \d+ of 200000 bytes written/ }, 'async')
  const first = readAll()
  t.ok(first > 0 && first < message.length, `only ${first} bytes went`)
  t.throws(() => transport.sendSync(message), { ...short, message: /: \d+ of 200000 bytes written/ }, 'sync')
  t.ok(readAll() < message.length)
  await transport.send(Buffer.from('READY=1'))
  t.equal(readAll(), 7, 'a message that fits is written whole')
})

t.test('sendSync without koffi refuses at once while an earlier write is stuck, instead of blocking the process',
  async (t) => {
    // A blocking datagram socket pair whose reader's queue is full: a manager that does not read.
    const pair = new Int32Array(2)
    t.equal(socketpair(1, 2 | SOCK_CLOEXEC, 0, pair), 0)
    const [writer, reader] = [pair[0] as number, pair[1] as number]
    t.teardown(() => {
      closeSync(writer)
      closeSync(reader)
    })
    const filler = Buffer.from('STATUS=filler')
    while (Number(send(writer, filler, filler.length, MSG_DONTWAIT)) > 0) {
      /* until EAGAIN */
    }
    const received: string[] = []
    const drain = () => {
      const buffer = Buffer.alloc(256)
      for (let n; (n = Number(recv(reader, buffer, buffer.length, MSG_DONTWAIT))) >= 0;) {
        const text = buffer.subarray(0, n).toString()
        if (text !== 'STATUS=filler') received.push(text)
      }
      return received
    }
    const transport = new FdTransport(writer, { sendTimeoutMs: 200 })
    await t.rejects(transport.send(Buffer.from('STATUS=stuck')), { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'EAGAIN' })
    t.throws(() => transport.sendSync(Buffer.from('STOPPING=1')), {
      code: 'ERR_SDNOTIFY_TIMEOUT',
      transport: 'fd',
      errno: 'EAGAIN',
      syscall: 'write',
      message: /earlier write is still blocked/,
    })
    // The manager reads again: the abandoned write completes, then last words go out synchronously.
    for (let i = 0; i < 400 && !drain().includes('STATUS=stuck'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    t.same(received, ['STATUS=stuck'], 'the stuck write arrived late, the refused one never')
    await new Promise((resolve) => setImmediate(resolve)) // the write's callback: the transport forgets it
    transport.sendSync(Buffer.from('STOPPING=1'))
    t.same(drain(), ['STATUS=stuck', 'STOPPING=1'])
    t.equal(loadedLibc(), undefined, 'all without koffi in core')
  })
