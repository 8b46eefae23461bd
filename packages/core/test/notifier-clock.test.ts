// Deadlines and time-left calculations use the monotonic clock (performance.now()): a wall-clock step (NTP,
// an administrator's `date -s`) must neither stretch nor cut the time a queued notification may wait.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { createNotifier, SdNotifyError } from '../src/index.js'
import { retryWhileBusy } from '../src/system-errors.js'
import { fakeManager } from '../src/testing.js'

const QLEN = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8'))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const realDateNow = Date.now

/** Steps the wall clock by `ms` (Date.now() only: timers and performance.now() are monotonic). */
function stepWallClock (t: { teardown(fn: () => unknown): void }, ms: number): void {
  Date.now = () => realDateNow() + ms
  t.teardown(() => { Date.now = realDateNow })
}

/** The outcome, or 'still pending' after 5 s (instead of hanging the test for an hour). */
function guarded<T> (promise: Promise<T>): Promise<T | Error | 'still pending'> {
  const guard = new Promise<'still pending'>((resolve) => setTimeout(() => resolve('still pending'), 5000).unref())
  return Promise.race([promise.catch((error: Error) => error), guard])
}

/** A notifier whose manager has stopped reading, with its kernel queue full: the next send is queued. */
async function frozenNotifier (t: { teardown(fn: () => unknown): void }, sendTimeoutMs: number) {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: 'koffi', sendTimeoutMs })
  await n.prepare()
  fake.pause()
  const fill = Array.from({ length: QLEN + 1 }, (_, i) => n.send({ extra: { X_FILL: i } }).catch((e: Error) => e))
  return { fake, n, fill }
}

t.test('the wall clock steps back an hour: a queued send still times out after sendTimeoutMs', async (t) => {
  const { n, fill } = await frozenNotifier(t, 300)
  const queued = n.send({ ready: true })
  stepWallClock(t, -3_600_000)
  const outcome = await guarded(queued)
  t.ok(outcome instanceof SdNotifyError, `rejected (got ${String(outcome)})`)
  t.match(outcome, { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'EAGAIN' })
  t.equal(await guarded(n.close()), undefined, 'close() does not wait an hour either')
  await Promise.all(fill)
})

t.test('the wall clock steps forward an hour: queued sends do not all expire at once', async (t) => {
  const { fake, n, fill } = await frozenNotifier(t, 20_000)
  const queued = n.send({ ready: true })
  stepWallClock(t, 3_600_000)
  await sleep(100) // the retries meanwhile look at the clock
  fake.resume()
  t.equal(await guarded(queued), true, 'sent once the manager reads again')
  t.ok((await Promise.all(fill)).every((result) => result === true))
  await n.close()
})

t.test('retryWhileBusy: a wall-clock step back does not extend its time limit', async (t) => {
  const fail = (errno: string) => new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', `busy: ${errno}`, { errno })
  const busy = retryWhileBusy(() => 'EAGAIN', fail, 200)
  setTimeout(() => stepWallClock(t, -3_600_000), 50)
  t.match(await guarded(busy), { code: 'ERR_SDNOTIFY_TIMEOUT', errno: 'EAGAIN' })
})
