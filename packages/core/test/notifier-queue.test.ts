// The send queue under a frozen (SIGSTOP'd) or vanished manager (issue 11), against the test kit's fake
// manager: pause() stops it reading, so the kernel queue (net.unix.max_dgram_qlen) fills as under a frozen
// systemd and sends get EAGAIN.
import { mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createNotifier } from '../src/index.js'
import { loadLibc } from '../src/transports/libc.js'
import { type FakeManager, fakeManager } from '../src/testing.js'

/** How many datagrams the kernel queues for a receiver that does not read. */
const QLEN = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8'))
const FILL = QLEN + 3
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type Test = Pick<typeof t, 'same' | 'equal' | 'teardown'>

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))
/** After every test: none of our internal promises was left rejected without a handler. */
async function noUnhandledRejection (t: Test): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
  t.same(unhandled.splice(0), [], 'no unhandled rejection')
}

/** The promise's outcome without ever leaving it unhandled: true/false, or the error. */
function outcome (promise: Promise<boolean>): Promise<boolean | (Error & { code?: string; errno?: string })> {
  return promise.then(
    (value) => value,
    (error: Error) => error
  )
}

/** Tracks when each promise settles (Date.now()), or undefined while pending. */
function settleTimes (promises: Promise<unknown>[]): (number | undefined)[] {
  const times: (number | undefined)[] = promises.map(() => undefined)
  promises.forEach((p, i) => {
    const done = () => { times[i] = Date.now() }
    p.then(done, done)
  })
  return times
}

/** Pauses the manager and fills its kernel queue (the fast path takes these), plus a few that must wait. */
async function frozen (t: Test, options: { sendTimeoutMs: number }) {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, ...options })
  t.equal(await n.prepare(), true)
  fake.pause()
  // Linux queues max_dgram_qlen + 1 datagrams (unix_recvq_full: length > backlog).
  const fill = Array.from({ length: FILL }, (_, i) => outcome(n.send({ extra: { X_FILL: i } })))
  return { fake, n, fill }
}

const texts = (fake: FakeManager) => fake.datagrams.map((d) => d.text)
const fillTexts = (count = FILL) => Array.from({ length: count }, (_, i) => `X_FILL=${i}`)

t.test('frozen during a burst: all arrive once the manager resumes, in order; our timers keep running', async (t) => {
  const { fake, n, fill } = await frozen(t, { sendTimeoutMs: 20_000 })
  const count = 3000
  const sends = Array.from({ length: count }, (_, i) => outcome(n.send({ extra: { X_SEQ: i } })))
  const settled = settleTimes(sends)
  // The event loop is ours again at once: the messages wait in the queue, not in a retry loop.
  let ticks = 0
  const ticker = setInterval(() => ticks++, 5)
  await sleep(300)
  clearInterval(ticker)
  t.ok(ticks >= 2, `timers ran while the manager was frozen (${ticks} ticks)`)
  t.equal(settled.filter((time) => time !== undefined).length, 0, 'nothing settled (nor was dropped) while frozen')
  fake.resume()
  t.ok((await Promise.all([...fill, ...sends])).every((result) => result === true), 'every send resolved true')
  await fake.waitFor({ X_SEQ: String(count - 1) })
  const expected = [...fillTexts(), ...Array.from({ length: count }, (_, i) => `X_SEQ=${i}`)]
  t.same(texts(fake), expected, 'all of them, in call order')
  await n.close()
  await noUnhandledRejection(t)
})

t.test('frozen for long, status() every 10 ms: deadlines from the call, superseded statuses coalesced', async (t) => {
  const sendTimeoutMs = 400
  const { fake, n, fill } = await frozen(t, { sendTimeoutMs })
  const calls: { at: number; result: ReturnType<typeof outcome> }[] = []
  const call = () => calls.push({ at: Date.now(), result: outcome(n.status(`tick ${calls.length}`)) })
  const ticker = setInterval(call, 10)
  await sleep(3000)
  clearInterval(ticker)
  const settled = settleTimes(calls.map((call) => call.result))
  const fillResults = await Promise.all(fill)
  await new Promise((resolve) => setImmediate(resolve))
  const resumedAt = Date.now()
  // Every call older than sendTimeoutMs has had its answer (with a generous margin for a busy machine): the
  // queue's latency does not grow with its length.
  const old = calls.filter((call) => call.at < resumedAt - sendTimeoutMs - 1500)
  t.ok(old.length > 50, `${old.length} calls made long enough before the resume`)
  const pending = old.filter((_, i) => settled[i] === undefined)
  t.equal(pending.length, 0, 'every one of them settled while the manager was still frozen')
  const oldResults = await Promise.all(old.map((call) => call.result))
  t.ok(
    oldResults.every((r) => r instanceof Error && r.code === 'ERR_SDNOTIFY_TIMEOUT' && r.errno === 'EAGAIN'),
    'they rejected with ERR_SDNOTIFY_TIMEOUT, errno EAGAIN'
  )
  t.match(oldResults[0], { message: /not sent within 400 ms of the call.*EAGAIN/ })
  const lastFill = fillResults.at(-1)
  t.match(lastFill, { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'EAGAIN' }, 'so did the message that found the queue full')

  fake.resume()
  t.equal(await n.ready('back'), true, 'sending resumes with the manager')
  const accepted = fillResults.filter((result) => result === true).length
  t.ok(accepted < FILL, `the kernel queue took ${accepted} of ${FILL}`)
  await fake.waitFor({ READY: '1' })
  const last = `STATUS=tick ${calls.length - 1}`
  // Kept: the fast-path sends already in the kernel queue, then only the newest status, then READY.
  t.same(texts(fake), [...fillTexts(accepted), last, 'READY=1\nSTATUS=back'], 'one status, the newest, was kept')
  const recent = await Promise.all(calls.filter((c) => c.at > resumedAt - sendTimeoutMs + 100).map((c) => c.result))
  t.ok(recent.length > 0 && recent.every((result) => result === true), 'the statuses it superseded resolved true')
  t.equal(n.lastStatus, 'back')
  await n.close()
  await noUnhandledRejection(t)
})

t.test('kept: only status-only and WATCHDOG=1-only messages coalesce, not past a barrier', async (t) => {
  const { fake, n, fill } = await frozen(t, { sendTimeoutMs: 20_000 })
  const order = [
    n.status('A'),
    n.ready(),
    n.send({ watchdog: true }),
    n.status('B'),
    n.send({ extra: { X_KEEP: 1 } }),
    n.send({ watchdog: true }),
    n.send({ watchdog: 'trigger' }),
    n.status('C'),
    n.send({ watchdog: true }),
    n.reloading(),
    n.errno(5),
    n.stopping('D'),
    n.status('E'),
    n.barrier(5000),
    n.status('F'),
    n.extendTimeout(1000),
    n.status('G'),
    n.send({ watchdog: true }),
  ].map(outcome)
  const settled = settleTimes(order)
  await sleep(100)
  const answered = settled.filter((time) => time !== undefined)
  t.equal(answered.length, 0, 'superseded messages are not answered before the newer one')
  fake.resume()
  // The barrier holds what follows until the manager acknowledges it (the fake closes its copy of the pipe
  // on receipt, as systemd does once it has processed what came before).
  await fake.waitFor({ WATCHDOG: '1' }, { after: await fake.waitFor({ STATUS: 'G' }) })
  t.equal(fake.datagrams.find((d) => d.text === 'BARRIER=1')?.fds, 1, 'the barrier came with its pipe')
  t.ok((await Promise.all([...fill, ...order])).every((result) => result === true), 'every promise resolved true')
  const received = texts(fake).slice(FILL).map((text) => text.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=…'))
  t.same(received, [
    'READY=1',
    'X_KEEP=1',
    'WATCHDOG=trigger',
    'WATCHDOG=1',
    'RELOADING=1\nMONOTONIC_USEC=…',
    'ERRNO=5',
    'STOPPING=1\nSTATUS=D',
    'STATUS=E',
    'BARRIER=1',
    'EXTEND_TIMEOUT_USEC=1000000',
    'STATUS=G',
    'WATCHDOG=1',
  ])
  t.equal(n.lastStatus, 'G')
  await n.close()
  await noUnhandledRejection(t)
})

t.test('an EAGAIN storm is retried with back-off: order kept, a bounded number of tries', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, sendTimeoutMs: 20_000 })
  t.equal(await n.prepare(), true)
  const libc = await loadLibc()
  // eslint-disable-next-line @typescript-eslint/unbound-method -- koffi's functions are plain functions, no `this`
  const sendto = libc.sendto
  let tries = 0
  libc.sendto = (...args: Parameters<typeof sendto>) => {
    tries++
    return sendto(...args)
  }
  t.teardown(() => { libc.sendto = sendto })

  t.equal(tries, 0)
  const idle = n.status('idle')
  t.equal(tries, 1, 'with nothing queued, the send is tried during the call (the fast path)')
  t.equal(await idle, true)
  await fake.waitFor({ STATUS: 'idle' })

  fake.pause()
  const started = Date.now()
  const sends = Array.from({ length: QLEN + 50 }, (_, i) => outcome(n.send({ extra: { X_SEQ: i } })))
  const queued = tries
  await sleep(1000)
  const elapsed = Date.now() - started
  const retries = tries - queued
  // A busy loop would make tens of thousands of tries here; the back-off (up to 20 ms) makes about 60 a second.
  t.ok(retries >= 1 && retries <= 20 + elapsed / 10, `${retries} tries in ${elapsed} ms while frozen`)
  fake.resume()
  t.ok((await Promise.all(sends)).every((result) => result === true))
  await fake.waitFor({ X_SEQ: String(QLEN + 49) })
  t.same(texts(fake).slice(1), Array.from({ length: QLEN + 50 }, (_, i) => `X_SEQ=${i}`), 'in order')
  await n.close()
  await noUnhandledRejection(t)
})

t.test('close() waits for queued sends at most until their deadlines', async (t) => {
  const sendTimeoutMs = 300
  const { n, fill } = await frozen(t, { sendTimeoutMs })
  const sends = Array.from({ length: 50 }, (_, i) => outcome(n.send({ extra: { X_SEQ: i } })))
  const settled = settleTimes(sends)
  const closing = n.close()
  // Before the change each queued send started its own timer after the previous one: 50 × 300 ms.
  const guard = sleep(5000).then(() => 'still waiting')
  t.equal(await Promise.race([closing, guard]), undefined, 'close() resolved, the manager still frozen')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(settled.filter((time) => time === undefined).length, 0, 'every queued send had its answer')
  t.ok((await Promise.all(sends)).every((result) => result instanceof Error && result.code === 'ERR_SDNOTIFY_TIMEOUT'))
  t.match((await Promise.all(fill)).at(-1), { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'EAGAIN' })
  await noUnhandledRejection(t)
})

t.test('close() lets what is queued go out if the manager resumes in time', async (t) => {
  const { fake, n, fill } = await frozen(t, { sendTimeoutMs: 20_000 })
  const stopping = outcome(n.stopping('bye'))
  const closing = n.close()
  await t.rejects(n.status('late'), { code: 'ERR_SDNOTIFY_CLOSED' })
  await sleep(100)
  fake.resume()
  await closing
  t.ok((await Promise.all([...fill, stopping])).every((result) => result === true))
  await fake.waitFor({ STOPPING: '1' })
  t.equal(texts(fake).at(-1), 'STOPPING=1\nSTATUS=bye')
  await noUnhandledRejection(t)
})

t.test('the notify socket vanishes (manager restarting) and comes back: sends made meanwhile arrive', async (t) => {
  // NOTIFY_SOCKET is a symlink we can point at a new socket: the "manager" comes back at the same path.
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-vanish-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'notify')
  const first = await fakeManager()
  symlinkSync(first.address, path)
  const n = createNotifier({ env: { NOTIFY_SOCKET: path }, sendTimeoutMs: 20_000 })
  t.equal(await n.ready(), true, 'the socket worked')
  await first.waitFor({ READY: '1' })
  await first.close() // gone: ENOENT
  const during = [n.status('restarting 1'), n.send({ extra: { X_DURING: 1 } }), n.status('restarting 2')].map(outcome)
  const settled = settleTimes(during)
  await sleep(200)
  t.equal(settled.filter((time) => time !== undefined).length, 0, 'waiting for the socket, not failed')
  const second = await fakeManager()
  t.teardown(() => second.close())
  unlinkSync(path)
  symlinkSync(second.address, path)
  t.same(await Promise.all(during), [true, true, true], 'sent once it was back')
  await second.waitFor({ STATUS: 'restarting 2' })
  t.same(texts(second), ['X_DURING=1', 'STATUS=restarting 2'], 'in order (the superseded status coalesced)')
  await n.close()
  await noUnhandledRejection(t)
})

t.test('the notify socket stays gone: ERR_SDNOTIFY_TIMEOUT naming the errno, from the call', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-vanish-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'notify')
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  symlinkSync(fake.address, path)
  const n = createNotifier({ env: { NOTIFY_SOCKET: path }, sendTimeoutMs: 300 })
  t.equal(await n.ready(), true)
  unlinkSync(path)
  writeFileSync(path, '') // not a socket: connect(2) semantics give ECONNREFUSED, as for a socket nobody listens on
  const error = await outcome(n.status('alone'))
  const message = /not sent within 300 ms.*ECONNREFUSED/
  t.match(error, { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'ECONNREFUSED', transport: 'koffi', message })
  await n.close()
  await noUnhandledRejection(t)
})
