// Issue 14: the transports' error paths (a full queue, failed sends, a socket this user may not write), each
// against the test kit's fake manager: the caller gets an SdNotifyError naming the errno and the syscall, the
// process keeps running, and nothing is dropped without an error.
import t from 'tap'
import { parseNotifySocket, type UnixAddress } from '../src/address.js'
import { KoffiTransport } from '../src/transports/koffi.js'
import { UnixDgramTransport } from '../src/transports/unix-dgram.js'
import { type FakeManager, fakeManager } from '../src/testing.js'

const texts = (fake: FakeManager) => fake.datagrams.map((d) => d.text)
const addressOf = (fake: FakeManager) => parseNotifySocket(fake.address) as UnixAddress

/** Sends through the synchronous fast path until the paused manager's kernel queue is full; returns how many fit. */
function fill (transport: UnixDgramTransport): number {
  let sent = 0
  while (transport.trySend(Buffer.from(`X_FILL=${sent}`))) sent++
  return sent
}

t.test('unix-dgram: sendSync before load() names prepare(), and sends nothing', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const transport = new UnixDgramTransport(addressOf(fake), { sendTimeoutMs: 1000 })
  t.throws(() => transport.sendSync(Buffer.from('STOPPING=1')),
    { code: 'ERR_SDNOTIFY_UNSUPPORTED', transport: 'unix-dgram', message: /prepare\(\)/ })
  await transport.load()
  transport.sendSync(Buffer.from('STOPPING=1'))
  await fake.waitFor({ STOPPING: '1' })
  t.same(texts(fake), ['STOPPING=1'], 'only the send made after load()')
})

t.test('unix-dgram: send() into a full queue waits for room and delivers every datagram, in order', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const transport = new UnixDgramTransport(addressOf(fake), { sendTimeoutMs: 5000 })
  await transport.load()
  fake.pause()
  const filled = fill(transport)
  t.ok(filled > 0, `the queue took ${filled}`)
  // Concurrent sends share one socket (opened by the first, reused by the others) and wait for 'writable'.
  const sends = [0, 1, 2].map((i) => transport.send(Buffer.from(`X_LATE=${i}`)))
  await new Promise((resolve) => setTimeout(resolve, 100))
  fake.resume()
  await Promise.all(sends)
  await fake.waitFor({ X_LATE: '2' })
  const late = texts(fake).filter((text) => text.startsWith('X_LATE'))
  t.same(late, ['X_LATE=0', 'X_LATE=1', 'X_LATE=2'], 'none dropped by the congestion, in order')
  t.equal(texts(fake).length, filled + 3)
  t.equal((transport as unknown as { socket: unknown }).socket, undefined, 'socket closed once idle')
})

t.test('unix-dgram: a queue that stays full rejects after sendTimeoutMs naming EAGAIN; sendSync refuses at once',
  async (t) => {
    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const transport = new UnixDgramTransport(addressOf(fake), { sendTimeoutMs: 200 })
    await transport.load()
    fake.pause()
    const filled = fill(transport)
    await t.rejects(transport.send(Buffer.from('STATUS=never')), {
      code: 'ERR_SDNOTIFY_TIMEOUT',
      transport: 'unix-dgram',
      errno: 'EAGAIN',
      syscall: 'send',
      message: /queue stayed full for 200 ms/,
    })
    t.throws(() => transport.sendSync(Buffer.from('STOPPING=1')), {
      code: 'ERR_SDNOTIFY_SEND_FAILED',
      errno: 'EAGAIN',
      syscall: 'send',
      message: new RegExp(`send failed with EAGAIN to ${fake.address}`),
    }, 'the caller learns the datagram was not sent')
    fake.resume()
    await fake.waitFor({ X_FILL: String(filled - 1) })
    t.equal(texts(fake).length, filled, 'what was refused never arrives later as a surprise')
    t.equal((transport as unknown as { socket: unknown }).socket, undefined, 'socket closed after the failures')
  })

t.test('unix-dgram: a send the kernel refuses (EMSGSIZE) rejects on both paths, naming the errno', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const transport = new UnixDgramTransport(addressOf(fake), { sendTimeoutMs: 1000 })
  // Larger than any socket send buffer may be (net.core.wmem_max is 208 KiB by default; a datagram is one write).
  const huge = Buffer.alloc(64 * 1024 * 1024, 'X')
  const refused = { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'unix-dgram', errno: 'EMSGSIZE', syscall: 'send' }
  await t.rejects(transport.send(huge), refused, 'the queued path')
  await transport.load()
  t.throws(() => transport.trySend(huge), refused, 'the fast path throws rather than report "congested"')
  t.equal((transport as unknown as { socket: unknown }).socket, undefined, 'no socket left open')
  await transport.send(Buffer.from('READY=1'))
  await fake.waitFor({ READY: '1' })
  t.same(texts(fake), ['READY=1'], 'the transport still works afterwards')
})

t.test('koffi: sendSync before load() names prepare(); trySend says "not now" instead of throwing', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const transport = new KoffiTransport({ address: addressOf(fake) }, { sendTimeoutMs: 1000 })
  t.teardown(() => transport.close())
  t.throws(() => transport.sendSync(Buffer.from('STOPPING=1')),
    { code: 'ERR_SDNOTIFY_UNSUPPORTED', transport: 'koffi', message: /prepare\(\)/ })
  t.equal(transport.trySend(Buffer.from('STATUS=early')), false, 'not loaded: the caller takes the async path')
  await transport.load()
  t.equal(transport.trySend(Buffer.from('STATUS=loaded')), true)
  await fake.waitFor({ STATUS: 'loaded' })
  t.same(texts(fake), ['STATUS=loaded'])
})

// A service running as another user than the manager's socket allows (User= with a NOTIFY_SOCKET it may not
// write): as root, only the effective uid is dropped, around synchronous calls (no await in between).
const asRoot = process.getuid?.() === 0 ? false : 'needs root to drop the effective uid to nobody'
t.test('a notify socket this user may not write: EACCES with a hint, from every transport', { skip: asRoot },
  async (t) => {
    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const koffi = new KoffiTransport({ address: addressOf(fake) }, { sendTimeoutMs: 1000 })
    t.teardown(() => koffi.close())
    await koffi.load()
    const dgram = new UnixDgramTransport(addressOf(fake), { sendTimeoutMs: 1000 })
    await dgram.load()
    const hint = /failed with EACCES \(the notify socket is not writable by this user\)/
    const asNobody = (fn: () => unknown) => () => {
      process.seteuid?.(65534)
      try {
        return fn()
      } finally {
        process.seteuid?.(0)
      }
    }
    t.throws(asNobody(() => koffi.trySend(Buffer.from('READY=1'))),
      { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'koffi', errno: 'EACCES', syscall: 'sendto', message: hint })
    t.throws(asNobody(() => koffi.sendSync(Buffer.from('READY=1'))), { errno: 'EACCES', message: hint })
    t.throws(asNobody(() => dgram.sendSync(Buffer.from('READY=1'))),
      { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'unix-dgram', errno: 'EACCES', syscall: 'connect', message: hint })
    t.equal(process.geteuid?.(), 0, 'the effective uid is back')
    t.equal(koffi.trySend(Buffer.from('READY=1')), true, 'as the right user the same transports send')
    dgram.sendSync(Buffer.from('STATUS=dgram'))
    await fake.waitFor({ STATUS: 'dgram' })
    t.same(texts(fake), ['READY=1', 'STATUS=dgram'], 'nothing refused arrived')
  })
