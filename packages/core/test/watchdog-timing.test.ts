// The watchdog's schedule at its edges, on a fake clock: a failed check followed by a slow re-check, a health
// check that never settles, a stall just over the limit, stop() or start() while a tick is under way.
import { mock } from 'node:test'
import t from 'tap'
import { Watchdog, watchdogSettings, type WatchdogHost } from '../src/watchdog.js'

/**
 * node:test's MockTimers drive setTimeout and Date; performance.now (the watchdog's clock) follows Date.
 * `advance` moves `step` ms at a time and lets the promises of each step settle (setImmediate stays real).
 * `stall` moves the clock in one go, running the timers that came due only at the end: a blocked event loop.
 */
function fakeClock (t: { teardown(fn: () => void): void }) {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  performance.now = () => Date.now()
  t.teardown(() => {
    mock.timers.reset()
    delete (performance as { now?: unknown }).now
  })
  const settle = () => new Promise((resolve) => setImmediate(resolve))
  return {
    async advance (ms: number, step = 1) {
      for (let i = 0; i < ms; i += step) {
        mock.timers.tick(step)
        await settle()
      }
    },
    async stall (ms: number) {
      mock.timers.tick(ms)
      await settle()
    },
  }
}

/** A watchdog whose host logs what it is asked to do, with the fake time. */
function watched (timeoutMs: number, host: Partial<WatchdogHost> = {}) {
  const log: string[] = []
  const pingTimes: number[] = []
  const base: WatchdogHost = {
    sendPing () {
      pingTimes.push(Date.now())
      log.push(`${Date.now()} ping`)
      return Promise.resolve(true)
    },
    reportUnhealthy (reason) {
      log.push(`${Date.now()} unhealthy: ${reason}`)
      return Promise.resolve()
    },
    reportHealthy () {
      log.push(`${Date.now()} healthy`)
      return Promise.resolve()
    },
    onError (error) {
      log.push(`${Date.now()} error: ${(error as Error).message}`)
    },
  }
  const watchdog = new Watchdog(watchdogSettings({ WATCHDOG_USEC: String(timeoutMs * 1000) }), { ...base, ...host })
  return { watchdog, log, pingTimes }
}

const gaps = (times: number[]) => times.slice(1).map((time, i) => time - (times[i] as number))

t.test('defaults: a check that times out, then a re-check that takes almost its limit, still pings in ' +
  'time', async (t) => {
  for (const timeoutMs of [2000, 9000]) {
    const clock = fakeClock(t)
    const { watchdog, log, pingTimes } = watched(timeoutMs)
    // A dependency that hangs for a while: every call made meanwhile answers when it comes back, which is
    // just before the re-check would give up (found from the first check's timeout, as a slow dependency would).
    let downSince: number | undefined
    let backAt = Infinity
    const waiting: (() => void)[] = []
    const healthCheck = () => {
      if (Date.now() >= backAt) return true
      downSince ??= Date.now()
      return new Promise<boolean>((resolve) => waiting.push(() => resolve(true)))
    }
    let calls = 0
    watchdog.start({ maxEventLoopDelayMs: false, healthCheck: () => (++calls === 1 ? true : healthCheck()) })
    for (let ms = 0; ms < 2.5 * timeoutMs; ms++) {
      await clock.advance(1)
      const timedOut = log.find((line) => line.includes('timed out after'))
      if (timedOut !== undefined && backAt === Infinity) {
        const [at, limit] = /^(\d+) .*timed out after (\d+) ms/.exec(timedOut)?.slice(1).map(Number) as [number, number]
        backAt = at + limit - 2
      }
      if (Date.now() >= backAt) for (const answer of waiting.splice(0)) answer()
    }
    watchdog.stop()
    t.ok(downSince !== undefined && backAt < Infinity, `WatchdogSec=${timeoutMs / 1000}s: one check timed out`)
    const worst = Math.max(...gaps(pingTimes))
    // The old default (half of what the timeout leaves) made this gap the whole timeout: a restart.
    t.ok(worst < 0.9 * timeoutMs, `pings at most ${worst} ms apart, a tenth of the timeout to spare`)
    mock.timers.reset()
  }
})

t.test('pingIntervalMs + 2 × healthCheckTimeoutMs must stay below the timeout', (t) => {
  const { watchdog } = watched(30_000)
  // A check that times out is re-checked at once, and that one may take as long again before the ping.
  t.throws(() => watchdog.start({ pingIntervalMs: 15_000, healthCheckTimeoutMs: 7_500 }), {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'watchdog.healthCheckTimeoutMs',
    message: /watchdog\.pingIntervalMs \+ 2 × watchdog\.healthCheckTimeoutMs must be below the watchdog timeout/,
  })
  t.equal(watchdog.start({ pingIntervalMs: 15_000, healthCheckTimeoutMs: 7_000 }), true)
  watchdog.stop()
  t.end()
})

t.test('a health check that never settles is not called again while it is pending', async (t) => {
  const clock = fakeClock(t)
  const { watchdog, log, pingTimes } = watched(3000) // ping every 1.5 s, checks may take 0.5 s or so
  let calls = 0
  let answer: ((healthy: boolean) => void) | undefined
  const healthCheck = () => {
    calls++
    if (calls === 1) return true
    if (calls === 2) return new Promise<boolean>((resolve) => (answer = resolve))
    return true
  }
  watchdog.start({ maxEventLoopDelayMs: false, healthCheck })
  await clock.advance(12_000, 5)
  t.equal(calls, 2, 'called once more after the first check, not at every re-check')
  t.same(pingTimes, [5], 'no ping while it is pending')
  t.match(log[1], /unhealthy: health check timed out after \d+ ms/)
  t.match(watchdog.unhealthyReason, /timed out/)
  answer?.(true)
  await clock.advance(2000, 5)
  t.ok(pingTimes.length > 1, 'it settled: the next check passes and pings')
  t.ok(calls > 2, 'and later checks call it again')
  watchdog.stop()
})

t.test('a stall just over maxEventLoopDelayMs that began right after the sentinel was armed is reported', async (t) => {
  for (const [stallMs, reported] of [
    [1150, true],
    [600, false],
  ] as const) {
    const clock = fakeClock(t)
    // WatchdogSec=2s: the limit is 1000 ms, the sentinel timer runs every 250 ms.
    const { watchdog, log } = watched(2000)
    watchdog.start()
    await clock.advance(251) // the sentinel fired at 250 and is armed again
    await clock.stall(stallMs)
    await clock.advance(10)
    watchdog.stop()
    const unhealthy = log.filter((line) => line.includes('unhealthy'))
    if (reported) {
      t.match(unhealthy, [/unhealthy: event loop blocked for \d+ to \d+ ms \(limit 1000 ms\)/], `${stallMs} ms`)
    } else {
      t.same(unhealthy, [], `${stallMs} ms: not reported`)
    }
    mock.timers.reset()
  }
})

t.test('stop() while a tick reports the status: that tick sends no ping', async (t) => {
  const clock = fakeClock(t)
  const { watchdog, log } = watched(1000, {
    // The restored status waits behind a busy queue for 50 ms.
    async reportHealthy () {
      log.push(`${Date.now()} healthy`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    },
  })
  let calls = 0
  watchdog.start({ maxEventLoopDelayMs: false, healthCheck: () => ++calls !== 2 })
  await clock.advance(650) // the check at 500 failed; the re-check at 625 passed and restores the status until 675
  t.ok(log.some((line) => line.endsWith(' healthy')), 'restoring the status')
  watchdog.stop() // e.g. notifier.close() at shutdown
  const stoppedAt = Date.now()
  await clock.advance(500)
  t.same(
    log.filter((line) => line.endsWith('ping') && Number(line.split(' ')[0]) >= stoppedAt),
    [],
    'no ping after stop()'
  )
})

t.test('start() while a tick runs: its health check is awaited, not called again; one ping', async (t) => {
  const clock = fakeClock(t)
  const { watchdog, pingTimes } = watched(1000)
  let calls = 0
  const healthCheck = () => {
    calls++
    return new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 100))
  }
  watchdog.start({ maxEventLoopDelayMs: false, healthCheck })
  await clock.advance(50)
  watchdog.start({ maxEventLoopDelayMs: false, healthCheck, pingIntervalMs: 400 })
  await clock.advance(100)
  t.equal(calls, 1, 'the new tick waits for the call under way')
  t.same(pingTimes, [101], 'the old tick is discarded: one ping, from the new one')
  watchdog.stop()
})
