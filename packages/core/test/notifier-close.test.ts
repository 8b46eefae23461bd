// Shutdown paths: close() called twice, close() while a send is retrying, sendSync() (last words) while a
// queued send is about to time out.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { createNotifier } from '../src/index.js'
import { parseNotifySocket, type UnixAddress } from '../src/address.js'
import { KoffiTransport } from '../src/transports/koffi.js'
import { loadLibc } from '../src/transports/libc.js'
import { fakeManager } from '../src/testing.js'

const QLEN = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8'))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether the promise has settled yet. */
function settled (promise: Promise<unknown>): () => boolean {
  let done = false
  promise.then(
    () => (done = true),
    () => (done = true)
  )
  return () => done
}

t.test('a second close() waits for what the first one waits for (a queued STOPPING=1)', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: 'koffi', sendTimeoutMs: 20_000 })
  await n.prepare()
  fake.pause()
  const fill = Array.from({ length: QLEN + 1 }, (_, i) => n.send({ extra: { X_FILL: i } }))
  const stopping = n.stopping('bye')
  // A signal handler and the framework's onClose both close the notifier.
  const first = n.close()
  const second = n.close()
  const secondDone = settled(second)
  await sleep(100)
  t.equal(secondDone(), false, 'the second close() is still waiting for the queue')
  fake.resume()
  await Promise.all([first, second])
  t.equal(await stopping, true)
  t.ok((await Promise.all(fill)).every((sent) => sent === true))
  await fake.waitFor({ STOPPING: '1' })
  t.equal(fake.datagrams.at(-1)?.text, 'STOPPING=1\nSTATUS=bye', 'STOPPING=1 reached the manager')
  t.equal(n.close(), n.close(), 'every later call gets the same promise')
})

t.test('koffi: close() while a send with descriptors is retrying never lets it write to a closed ' +
  'descriptor', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const address = parseNotifySocket(fake.address) as UnixAddress
  const transport = new KoffiTransport({ address }, { sendTimeoutMs: 300 })
  await transport.load()
  fake.pause()
  while (transport.trySend(Buffer.from('X_FILL=1'))) {
    /* fill the manager's queue */
  }
  const libc = await loadLibc()
  // eslint-disable-next-line @typescript-eslint/unbound-method -- koffi's functions are plain functions, no `this`
  const { sendmsg, close } = libc
  const events: string[] = []
  libc.sendmsg = (fd, ...rest) => {
    events.push(`sendmsg ${fd}`)
    return sendmsg(fd, ...rest)
  }
  libc.close = (fd) => {
    events.push(`close ${fd}`)
    return close(fd)
  }
  t.teardown(() => Object.assign(libc, { sendmsg, close }))
  const passed = openSync('/dev/null', 'r')
  t.teardown(() => closeSync(passed))
  const sending = transport.send(Buffer.from('FDSTORE=1\nFDNAME=x'), [passed]).catch((error: unknown) => error)
  await sleep(30) // retrying, between two tries
  transport.close()
  t.match(await sending, { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'EAGAIN' })
  const socket = /^sendmsg (\d+)$/.exec(events[0] ?? '')?.[1]
  t.ok(socket !== undefined, `it did try (${events.length} tries)`)
  const closedAt = events.indexOf(`close ${socket}`)
  t.ok(closedAt > 0, 'the socket is closed once the send settled')
  t.same(events.slice(closedAt + 1), [], 'no try after the descriptor was closed')
})

/** A datagram socket bound to a path, with a full queue: the notify socket of a manager that stopped reading. */
async function stuckReceiver (t: { teardown(fn: () => void): void }) {
  const koffi = (await import('koffi')).default
  const lib = koffi.load('libc.so.6')
  const socket = lib.func('int socket(int, int, int)')
  const bind = lib.func('int bind(int, const void *, uint32_t)')
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-stuck-'))
  const path = join(dir, 'notify')
  const fd = socket(1, 2 | 0o2000000, 0) as number
  const { sockaddr } = parseNotifySocket(path) as UnixAddress
  if (bind(fd, sockaddr, sockaddr.length) !== 0) throw new Error(`bind failed: errno ${koffi.errno()}`)
  t.teardown(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })
  /** Everything queued, read without blocking. */
  const drain = () => {
    const recv = lib.func('intptr_t recv(int, void *, size_t, int)')
    const texts: string[] = []
    const buffer = Buffer.alloc(256)
    for (let n; (n = Number(recv(fd, buffer, buffer.length, 0x40))) >= 0;) texts.push(buffer.subarray(0, n).toString())
    return texts
  }
  return { fd, path, drain }
}

/** Another thread reads `count` datagrams from `fd` after `ms`: the manager resuming while this thread is blocked. */
function rescue (fd: number, ms: number, count: number): Promise<string[]> {
  const worker = new Worker(
    `const { readSync } = require('node:fs')
     const { parentPort } = require('node:worker_threads')
     setTimeout(() => {
       const texts = []
       for (let i = 0; i < ${count}; i++) {
         const buffer = Buffer.alloc(256)
         texts.push(buffer.subarray(0, readSync(${fd}, buffer)).toString())
       }
       parentPort.postMessage(texts)
     }, ${ms})`,
    { eval: true }
  )
  return new Promise((resolve, reject) => {
    worker.once('message', (texts: string[]) => { void worker.terminate().then(() => resolve(texts)) })
    worker.once('error', reject)
  })
}

t.test('sendSync keeps its own time budget while a queued send is about to time out', async (t) => {
  for (const transport of ['koffi', 'fd'] as const) {
    const receiver = await stuckReceiver(t)
    let env: Record<string, string>
    let writer: number | undefined
    if (transport === 'koffi') env = { NOTIFY_SOCKET: receiver.path }
    else {
      // The OpenFile= notify socket: a descriptor connected to the manager's, named "notify" in LISTEN_FDNAMES.
      const koffi = (await import('koffi')).default
      const lib = koffi.load('libc.so.6')
      writer = lib.func('int socket(int, int, int)')(1, 2 | 0o2000000, 0) as number
      const { sockaddr } = parseNotifySocket(receiver.path) as UnixAddress
      lib.func('int connect(int, const void *, uint32_t)')(writer, sockaddr, sockaddr.length)
      const names = [...Array.from({ length: writer - 3 }, () => 'other'), 'notify']
      env = { LISTEN_FDS: String(names.length), LISTEN_PID: String(process.pid), LISTEN_FDNAMES: names.join(':') }
    }
    const n = createNotifier({ env, transport, sendTimeoutMs: 10_000 })
    await n.prepare()
    await loadLibc() // the fd transport's sendSync uses koffi's non-blocking send when it is loaded
    const fill: Promise<unknown>[] = []
    for (let i = 0; i <= QLEN; i++) fill.push(n.send({ extra: { X_FILL: i } }).catch((error: unknown) => error))
    // Handed to the transport and in flight (koffi: descriptors go through the retrying send; fd: a pool write).
    const queued = transport === 'koffi' ? n.storeFds([0], 'stdin') : n.status('queued')
    const queuedOutcome = queued.catch((error: unknown) => error)
    await sleep(50)
    // The in-flight send's deadline is 1 ms away.
    const clock = performance.now.bind(performance)
    performance.now = () => clock() + 9_999
    const rescued = rescue(receiver.fd, 100, 5) // the queue holds at least QLEN + 1 (11) datagrams
    try {
      t.equal(n.sendSync({ stopping: true }), true, `${transport}: sent once the manager read again`)
    } catch (error) {
      t.fail(`${transport}: sendSync gave up: ${(error as Error).message}`)
    } finally {
      delete (performance as { now?: unknown }).now
    }
    const texts = await rescued
    for (let i = 0; i < 200 && !texts.includes('STOPPING=1'); i++) {
      texts.push(...receiver.drain())
      await sleep(10)
    }
    t.ok(texts.includes('STOPPING=1'), `${transport}: STOPPING=1 reached the manager`)
    await queuedOutcome
    await n.close()
    await Promise.all(fill)
    if (writer !== undefined) closeSync(writer)
  }
})
