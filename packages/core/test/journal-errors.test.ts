// Issue 14: sendJournal() and the journal socket when journald is busy, gone, or the path is wrong, against the
// test kit's receiver (a fake journald): an SdNotifyError naming the errno and the path, never a silent drop.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { JournalSocket } from '../src/journal/native.js'
import { sendJournal } from '../src/journal/send.js'
import { createReceiver } from '../src/testing/receiver.js'

const realDateNow = Date.now

/** A folder for a socket, removed by the test's teardown. */
function socketPath (t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'socket')
}

/** A fake journald that does not read: its kernel queue filled up to EAGAIN by another client. */
async function busyJournal (t: { teardown(fn: () => unknown): void }) {
  const path = socketPath(t)
  const receiver = await createReceiver(path)
  t.teardown(() => receiver.close())
  const filler = new JournalSocket(path)
  t.teardown(() => filler.close())
  await filler.load()
  let queued = 0
  while (filler.trySend({ data: Buffer.from(`MESSAGE=filler ${queued}\n`) }) === undefined) queued++
  const messages = () => receiver.drain().map((d) => d.bytes.toString())
  return { path, receiver, queued, messages }
}

t.test('journald busy: sendJournal waits for room, and a wall-clock step neither cuts nor stretches the wait',
  async (t) => {
    const journal = await busyJournal(t)
    t.ok(journal.queued > 0, `the queue took ${journal.queued}`)
    const sent = sendJournal({ MESSAGE: 'after the wait' }, { socket: journal.path, timeoutMs: 5000 })
    await new Promise((resolve) => setTimeout(resolve, 20)) // it is waiting now
    // An administrator's `date -s` an hour ahead while the entry waits: the timeout is on the monotonic clock.
    Date.now = () => realDateNow() + 3_600_000
    t.teardown(() => { Date.now = realDateNow })
    await new Promise((resolve) => setTimeout(resolve, 100))
    const before = journal.messages()
    t.equal(before.length, journal.queued, 'journald reads its queue')
    t.equal(await sent, undefined, 'then the entry goes in')
    t.same(journal.messages(), ['MESSAGE=after the wait\n'], 'once, after the ones queued before it')
  })

t.test('journald stays busy: sendJournal rejects after timeoutMs naming the path and EAGAIN', async (t) => {
  const journal = await busyJournal(t)
  await t.rejects(sendJournal({ MESSAGE: 'never' }, { socket: journal.path, timeoutMs: 150 }), {
    code: 'ERR_SDNOTIFY_TIMEOUT',
    errno: 'EAGAIN',
    syscall: 'sendto',
    message: `sdnotify: journal: ${journal.path} still full after 150 ms (EAGAIN)`,
  })
  t.notOk(journal.messages().includes('MESSAGE=never\n'), 'a rejected entry does not arrive later')
})

t.test('a large entry journald cannot take (gone): rejected, its memfd closed; journald back: sent via memfd',
  async (t) => {
    const path = socketPath(t)
    const openFds = () => (process.getBuiltinModule('node:fs').readdirSync('/proc/self/fd')).length
    const large = { MESSAGE: 'big', BLOB: Buffer.alloc(1024 * 1024, 'x') } // larger than a datagram may be
    const before = openFds()
    await t.rejects(sendJournal(large, { socket: path }),
      { code: 'ERR_SDNOTIFY_SEND_FAILED', errno: 'ENOENT', message: /failed with ENOENT \(is systemd-journald/ })
    const afterFirst = openFds()
    await t.rejects(sendJournal(large, { socket: path }), { name: 'SdNotifyError', errno: 'ENOENT' })
    t.equal(openFds(), afterFirst, 'no memfd left open by a failed send')
    t.ok(afterFirst - before <= 1, 'at most the cached socket itself')
    const receiver = await createReceiver(path)
    t.teardown(() => receiver.close())
    await sendJournal(large, { socket: path })
    const [datagram, ...rest] = receiver.drain()
    t.same(rest, [])
    t.match(datagram, { fds: 1, bytes: Buffer.alloc(0) }, 'one descriptor, no payload: a memfd entry')
  })

t.test('a wrong socket path: a stream socket (EPROTOTYPE, no journald hint), a closed one (ECONNREFUSED, hint)',
  async (t) => {
    const path = socketPath(t)
    // e.g. journald's stdout socket, /run/systemd/journal/stdout, passed by mistake: a SOCK_STREAM socket.
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(path, resolve))
    t.teardown(() => server.close())
    const error = await sendJournal({ MESSAGE: 'x' }, { socket: path }).catch((e: Error) => e)
    t.match(error, { code: 'ERR_SDNOTIFY_SEND_FAILED', errno: 'EPROTOTYPE' })
    t.notMatch((error as Error).message, /journald running/, 'no misleading hint')

    const closed = socketPath(t)
    const receiver = await createReceiver(closed)
    receiver.close() // its socket file stays: connect(2) says ECONNREFUSED
    await t.rejects(sendJournal({ MESSAGE: 'x' }, { socket: closed }),
      { errno: 'ECONNREFUSED', message: /ECONNREFUSED \(is systemd-journald running\?\)/ })
  })

t.test('the socket option must be a unix socket path: the error names the option and the rule', async (t) => {
  await t.rejects(sendJournal({ MESSAGE: 'x' }, { socket: 'vsock:2:1234' }), {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'socket',
    rule: 'must be a unix socket path',
  })
})

t.test('JournalSocket before load(): trySend reports ENOTCONN, close() is harmless', (t) => {
  const socket = new JournalSocket('/run/sdnotify-test/none')
  t.equal(socket.loaded, false)
  t.equal(socket.trySend({ data: Buffer.from('MESSAGE=x\n') }), 'ENOTCONN')
  socket.close()
  socket.close()
  t.end()
})

t.test('createReceiver: a non-unix address and a path in use are refused with the syscall; drain after close',
  async (t) => {
    await t.rejects(createReceiver('vsock:2:1'), { code: 'ERR_SDNOTIFY_INVALID_SOCKET', message: /vsock:2:1/ })
    const path = socketPath(t)
    const receiver = await createReceiver(path)
    await t.rejects(createReceiver(path), { code: 'ERR_SDNOTIFY_UNSUPPORTED', syscall: 'bind' })
    const sender = new JournalSocket(path)
    t.teardown(() => sender.close())
    await sender.load()
    t.equal(sender.trySend({ data: Buffer.from('MESSAGE=one\n') }), undefined)
    receiver.close()
    t.same(receiver.drain(), [], 'closed: nothing read, no error')
    receiver.close()
  })
