import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { mock } from 'node:test'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createNotifier, type Notifier, SdNotifyError } from '../src/index.js'
import { Watchdog, watchdogSettings, type WatchdogHost } from '../src/watchdog.js'
import { type FakeManager, fakeManager } from '../src/testing.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const pings = (texts: string[]) => texts.filter((text) => text === 'WATCHDOG=1').length
const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
let marks = 0
/** Every datagram's text once all that `n` sent so far has arrived: a marker sent last has come. */
async function received (fake: FakeManager, n: Notifier): Promise<string[]> {
  const mark = String(++marks)
  await n.send({ extra: { X_MARK: mark } })
  await fake.waitFor({ X_MARK: mark })
  return fake.datagrams.map((d) => d.text)
}

/**
 * A fake clock for the schedule: node:test's MockTimers drive setTimeout, clearTimeout and Date, and
 * performance.now (the watchdog's clock) follows Date. `advance` moves 1 ms at a time and lets the
 * promises of each step settle (setImmediate is left real for that).
 */
function fakeClock (t: { teardown(fn: () => void): void }) {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  performance.now = () => Date.now()
  t.teardown(() => {
    mock.timers.reset()
    delete (performance as { now?: unknown }).now
  })
  return {
    async advance (ms: number) {
      for (let i = 0; i < ms; i++) {
        mock.timers.tick(1)
        await new Promise((resolve) => setImmediate(resolve))
      }
    },
  }
}

/** A watchdog on a host that records what it was asked to send, and when (fake-clock ms). */
function recordingWatchdog (timeoutMs: number, pingMs: (call: number) => number = () => 0) {
  const pingTimes: number[] = []
  const log: string[] = []
  const errors: unknown[] = []
  let inFlight = 0
  let maxInFlight = 0
  const host: WatchdogHost = {
    async sendPing () {
      pingTimes.push(Date.now())
      log.push(`${Date.now()} ping`)
      maxInFlight = Math.max(maxInFlight, ++inFlight)
      const ms = pingMs(pingTimes.length)
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
      inFlight--
      return true
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
      errors.push(error)
      log.push(`${Date.now()} error: ${(error as Error).message}`)
    },
  }
  const watchdog = new Watchdog(watchdogSettings({ WATCHDOG_USEC: String(timeoutMs * 1000) }), host)
  return { watchdog, pingTimes, log, errors, maxInFlight: () => maxInFlight }
}
const gaps = (times: number[]) => times.slice(1).map((time, i) => time - (times[i] as number))

t.test('pings at half the timeout while healthy', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  t.equal(n.watchdog.enabled, true)
  t.equal(n.watchdog.intervalMs, 200)
  t.equal(n.watchdog.start(), true)
  t.equal(n.watchdog.running, true)
  await sleep(650)
  n.watchdog.stop()
  const count = pings(await received(fake, n))
  t.ok(count >= 5 && count <= 8, `one ping at once, then one per 100 ms (${count} in 650 ms)`)
  await sleep(250)
  t.equal(pings(await received(fake, n)), count, 'no pings after stop()')
  await n.close()
})

t.test('a failing health check stops the pings, reports why, and the status comes back on recovery', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  await n.status('Serving 3 tenants')
  let healthy = true
  const reasons: string[] = []
  n.watchdog.start({
    healthCheck: () => healthy || Promise.reject(new Error('db down')),
    onUnhealthy: (r) => reasons.push(r),
  })
  await sleep(250)
  healthy = false
  await sleep(120)
  const before = pings(await received(fake, n))
  await sleep(400)
  t.equal(pings(await received(fake, n)), before, 'no pings while unhealthy')
  t.same(reasons, ['health check failed: db down'], 'onUnhealthy once per episode')
  t.ok(fake.datagrams.some((d) => d.text === 'STATUS=Unhealthy, watchdog paused: health check failed: db down'))
  t.equal(n.watchdog.unhealthyReason, 'health check failed: db down')
  healthy = true
  await sleep(250)
  t.ok(pings(await received(fake, n)) > before, 'pings again once healthy')
  const restored = fake.datagrams.filter((d) => d.text === 'STATUS=Serving 3 tenants')
  t.equal(restored.length, 2, 'the previous status was restored')
  t.equal(n.lastStatus, 'Serving 3 tenants')
  n.watchdog.stop()
  await n.close()
})

t.test('health check results: false and a timeout are unhealthy', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  const reasons: string[] = []
  n.watchdog.start({ healthCheck: () => false, onUnhealthy: (r) => reasons.push(r), reportStatus: false })
  await sleep(150)
  t.same(reasons, ['health check returned false'])
  n.watchdog.start({
    healthCheck: () => new Promise(() => {}),
    healthCheckTimeoutMs: 20,
    onUnhealthy: (r) => reasons.push(r),
  })
  await sleep(150)
  t.equal(reasons[1], 'health check timed out after 20 ms')
  t.equal(pings(await received(fake, n)), 0)
  const reported = fake.datagrams.some((d) => d.text.startsWith('STATUS=') && d.text.includes('returned false'))
  t.notOk(reported, 'reportStatus: false sends no status')
  n.watchdog.stop()
  await n.close()
})

t.test('an event-loop stall longer than maxEventLoopDelayMs skips the ping', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '1000000' } })
  const reasons: string[] = []
  n.watchdog.start({ pingIntervalMs: 100, maxEventLoopDelayMs: 150, onUnhealthy: (r) => reasons.push(r) })
  await sleep(250)
  const end = Date.now() + 400
  while (Date.now() < end) {
    /* stall */
  }
  await sleep(50)
  t.match(reasons[0], /^event loop blocked for \d+ to \d+ ms \(limit 150 ms\)$/)
  n.watchdog.stop()
  await n.close()
})

t.test('trigger() and ping()', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  t.equal(n.watchdog.enabled, false)
  t.equal(n.watchdog.start(), false, 'no WatchdogSec=: start() does nothing')
  await n.watchdog.ping()
  await n.watchdog.trigger()
  await fake.waitFor({ WATCHDOG: 'trigger' })
  t.same(fake.datagrams.map((d) => d.text), ['WATCHDOG=1', 'WATCHDOG=trigger'])
  t.throws(
    () => createNotifier({ env: { WATCHDOG_USEC: '1000000' } }).watchdog.start({ pingIntervalMs: 1000 }),
    { field: 'watchdog.pingIntervalMs', message: /shorter than the watchdog timeout/ }
  )
  await n.close()
})

t.test('a running watchdog never keeps the process alive', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const script = `import { createNotifier } from ${JSON.stringify(dist)}
    const n = createNotifier(); n.watchdog.start(); await n.ready(); console.log('started')`
  const started = Date.now()
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '30000000' },
    encoding: 'utf8',
    timeout: 20_000,
  })
  t.equal(out.trim(), 'started')
  t.ok(Date.now() - started < 15_000, 'the process exited on its own')
})

t.test('ticks run at a fixed rate, however long the health check takes', async (t) => {
  const clock = fakeClock(t)
  const { watchdog, pingTimes } = recordingWatchdog(1000)
  // Each check takes 80 ms (the default limit here is 100 ms): pings still go every 200 ms, not every 280.
  const healthCheck = () => new Promise((resolve) => setTimeout(() => resolve(true), 80))
  watchdog.start({ pingIntervalMs: 200, maxEventLoopDelayMs: false, healthCheck })
  await clock.advance(1000)
  watchdog.stop()
  // The first tick is due at once: a 0 ms timer fires after 1 ms, as in Node.
  t.same(pingTimes, [81, 280, 480, 680, 880], 'due at start + k × 200 ms, each after its 80 ms check')
})

t.test('after an unhealthy tick the check comes back sooner: one transient failure costs no deadline', async (t) => {
  const clock = fakeClock(t)
  // Defaults for WatchdogSec=1s: ping every 500 ms, checks may take 166 ms, re-check 125 ms after a failure.
  const { watchdog, pingTimes, log } = recordingWatchdog(1000)
  let calls = 0
  watchdog.start({ maxEventLoopDelayMs: false, healthCheck: () => ++calls !== 2 })
  await clock.advance(2600)
  watchdog.stop()
  t.same(pingTimes, [1, 625, 1000, 1500, 2000, 2500], 'the failed tick at 500 ms is re-checked at 625 ms')
  t.ok(Math.max(...gaps(pingTimes)) < 1000, `pings less than the timeout apart (gaps ${gaps(pingTimes).join(', ')})`)
  const episode = ['500 unhealthy: health check returned false', '625 healthy', '625 ping']
  t.same(log.slice(1, 4), episode, 'reported, then restored')
})

t.test('a tick still running when the next is due: that one is skipped, not run alongside, and reported', async (t) => {
  const clock = fakeClock(t)
  // The first ping takes 450 ms (a send queue stuck behind a full socket): the ticks due at 200 and 400
  // are merged into it, the next one runs at 600 as scheduled.
  const { watchdog, pingTimes, errors, maxInFlight } = recordingWatchdog(1000, (call) => (call === 1 ? 450 : 0))
  watchdog.start({ pingIntervalMs: 200, maxEventLoopDelayMs: false })
  await clock.advance(1100)
  watchdog.stop()
  t.same(pingTimes, [1, 600, 800, 1000])
  t.equal(maxInFlight(), 1, 'never two ticks at once')
  t.equal(errors.length, 1)
  t.ok(errors[0] instanceof SdNotifyError)
  const skipped = /took 450 ms, longer than pingIntervalMs \(200 ms\): 2 ticks were skipped/
  t.match((errors[0] as SdNotifyError).message, skipped)
})

t.test('a health check that throws synchronously is unhealthy; a throwing onUnhealthy breaks nothing', async (t) => {
  const clock = fakeClock(t)
  const { watchdog, pingTimes, log, errors } = recordingWatchdog(1000)
  let calls = 0
  const healthCheck = () => {
    if (++calls === 2) throw new Error('boom')
    return true
  }
  const onUnhealthy = () => {
    throw new Error('a bug in onUnhealthy')
  }
  watchdog.start({ maxEventLoopDelayMs: false, healthCheck, onUnhealthy })
  await clock.advance(1600)
  watchdog.stop()
  t.ok(log.includes('500 unhealthy: health check failed: boom'))
  t.same(
    errors.map((error) => (error as Error).message),
    ['a bug in onUnhealthy'],
    'the callback error goes to onError'
  )
  t.same(pingTimes, [1, 625, 1000, 1500], 'and the schedule goes on')
})

t.test('pingIntervalMs + 2 × healthCheckTimeoutMs must be below the watchdog timeout', (t) => {
  const { watchdog } = recordingWatchdog(30_000)
  const sum = 'watchdog.pingIntervalMs + 2 × watchdog.healthCheckTimeoutMs'
  const message = `sdnotify: option ${sum} must be below the watchdog timeout (30000 ms) by at least 100 ms`
  t.throws(() => watchdog.start({ pingIntervalMs: 20_000, healthCheckTimeoutMs: 10_000 }), {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'watchdog.healthCheckTimeoutMs',
    message, // t.throws matches a string as a substring
  })
  t.equal(watchdog.running, false)
  // An interval alone still only has to be below the timeout: the default check timeout fits what is left.
  t.equal(watchdog.start({ pingIntervalMs: 24_000 }), true)
  watchdog.stop()
  const tooLong = { field: 'watchdog.pingIntervalMs', message: /shorter than the watchdog timeout/ }
  t.throws(() => watchdog.start({ pingIntervalMs: 30_000 }), tooLong)
  t.end()
})

/** Voluntary context switches of a process's main thread: how often it went to sleep, so how often it woke. */
const wakeups = (pid: number) =>
  Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1])

t.test('an idle process with the default watchdog wakes at most a few times a second', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const script = `import { createNotifier } from ${JSON.stringify(dist)}
    const n = createNotifier(); n.watchdog.start(); await n.ready()
    setInterval(() => {}, 2 ** 31 - 1) // stays alive without waking
    console.log('started')`
  // env -u NODE_OPTIONS: without tap's hooks in the child.
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', script], {
    env: { ...process.env, NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '30000000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill())
  const [line] = (await once(child.stdout, 'data')) as [Buffer]
  t.equal(line.toString().trim(), 'started')
  await sleep(500) // start-up settles
  const before = wakeups(child.pid as number)
  await sleep(3000)
  const woke = wakeups(child.pid as number) - before
  // monitorEventLoopDelay at 20 ms woke it ~150 times in 3 s; the sentinel timer wakes it about once a second.
  t.ok(woke <= 15, `${woke} wake-ups in 3 s (at most 15)`)
  const texts = fake.datagrams.map((d) => d.text)
  t.ok(texts.includes('READY=1') && texts.includes('WATCHDOG=1'), 'it did start the watchdog and ping')
})

t.test('a 3 s stall with a 2 s threshold is reported when it ends, and the status comes back', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '30000000' } })
  t.teardown(() => n.close())
  await n.status('Serving')
  const reasons: string[] = []
  n.watchdog.start({ maxEventLoopDelayMs: 2000, onUnhealthy: (reason) => reasons.push(reason) })
  await sleep(100)
  const end = Date.now() + 3000
  while (Date.now() < end) {
    /* stall */
  }
  // The next tick is 15 s away: the report comes from the sentinel, at once.
  await sleep(1000)
  t.equal(reasons.length, 1)
  const delay = Number(/^event loop blocked for (\d+) to \d+ ms \(limit 2000 ms\)$/.exec(reasons[0] ?? '')?.[1])
  // The sentinel runs every 500 ms (a quarter of the threshold): a 3 s stall makes it at least 2.5 s late.
  t.ok(delay >= 2500, `measured ${delay} ms`)
  const sent = await received(fake, n)
  t.ok(sent.includes(`STATUS=Unhealthy, watchdog paused: ${reasons[0]}`), 'in STATUS')
  const pingsBefore = pings(sent)
  // The re-check 3.75 s after (a quarter of the interval) finds the loop well again.
  const deadline = Date.now() + 10_000
  while (n.watchdog.unhealthyReason !== undefined && Date.now() < deadline) await sleep(50)
  t.equal(n.watchdog.unhealthyReason, undefined, 'healthy again')
  await sleep(100)
  t.ok(pings(await received(fake, n)) > pingsBefore, 'and pinging')
  t.equal(fake.datagrams.filter((d) => d.text === 'STATUS=Serving').length, 2, 'the status was restored')
  n.watchdog.stop()
})

t.test('a health check failing with a multi-line message: a one-line reason, the Unhealthy status sent', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  const reasons: string[] = []
  const failure = new Error('db down\n    at Pool.connect (pool.js:1:1)')
  n.watchdog.start({ healthCheck: () => Promise.reject(failure), onUnhealthy: (r) => reasons.push(r) })
  await sleep(150)
  n.watchdog.stop()
  t.same(reasons, ['health check failed: db down at Pool.connect (pool.js:1:1)'], 'one line (errorText)')
  t.ok(
    (await received(fake, n)).includes(
      'STATUS=Unhealthy, watchdog paused: health check failed: db down at Pool.connect (pool.js:1:1)'
    ),
    'the Unhealthy status was sent'
  )
  n.watchdog.start({
    healthCheck: () => Promise.reject(new AggregateError([new Error('a'), new Error('b')], 'two checks failed')),
    onUnhealthy: (r) => reasons.push(r),
    reportStatus: false,
  })
  await sleep(150)
  n.watchdog.stop()
  t.equal(reasons[1], 'health check failed: two checks failed; a; b', 'an AggregateError with its errors')
  await n.close()
})

t.test('reportUnhealthy: any reason still gives a valid one-line status', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  const host = (n.watchdog as unknown as { host: WatchdogHost }).host
  await host.reportUnhealthy('line one\nline two')
  await fake.waitFor({ STATUS: /^Unhealthy/ })
  t.same(fake.datagrams.map((d) => d.text), ['STATUS=Unhealthy, watchdog paused: line one line two'])
  await n.close()
})

t.test("the default onError warning has one 'sdnotify: ' prefix", async (t) => {
  const warnings: [string, string][] = []
  const n = createNotifier({
    env: { NOTIFY_SOCKET: '/nonexistent/notify', WATCHDOG_USEC: '200000' },
    onWarning: (message, code) => warnings.push([message, code]),
  })
  n.watchdog.start({ maxEventLoopDelayMs: false }) // every ping fails: ENOENT
  await sleep(150)
  n.watchdog.stop()
  const errors = warnings.filter(([, code]) => code === 'SDNOTIFY_ERROR')
  t.ok(errors.length > 0, 'the failed pings were reported')
  for (const [message] of errors) {
    t.match(message, /^sdnotify: /, message)
    t.notMatch(message, /^sdnotify: sdnotify: /, 'not doubled')
  }
  const plain: [string, string][] = []
  const m = createNotifier({
    env: { NOTIFY_SOCKET: '/nonexistent/notify', WATCHDOG_USEC: '200000' },
    onWarning: (message, code) => plain.push([message, code]),
  })
  m.watchdog.start({
    maxEventLoopDelayMs: false,
    healthCheck: () => false,
    reportStatus: false,
    onUnhealthy: () => {
      throw new Error('a bug in onUnhealthy')
    },
  })
  await sleep(150)
  m.watchdog.stop()
  t.same(plain[0], ['sdnotify: a bug in onUnhealthy', 'SDNOTIFY_ERROR'], 'a message without the prefix gets it')
  await n.close()
  await m.close()
})
