import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createNotifier } from '../src/index.js'
import { fakeManager } from '@sdnotify/systemd-harness'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const pings = (texts: string[]) => texts.filter((text) => text === 'WATCHDOG=1').length

t.test('pings at half the timeout while healthy', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  t.equal(n.watchdog.enabled, true)
  t.equal(n.watchdog.intervalMs, 200)
  t.equal(n.watchdog.start(), true)
  t.equal(n.watchdog.running, true)
  await sleep(650)
  n.watchdog.stop()
  const count = pings(fake.messages.map((m) => m.text))
  t.ok(count >= 5 && count <= 8, `one ping at once, then one per 100 ms (${count} in 650 ms)`)
  await sleep(250)
  t.equal(pings(fake.messages.map((m) => m.text)), count, 'no pings after stop()')
  await n.close()
})

t.test('a failing health check stops the pings, reports why, and the status comes back on recovery', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  await n.status('Serving 3 tenants')
  let healthy = true
  const reasons: string[] = []
  n.watchdog.start({ healthCheck: () => healthy || Promise.reject(new Error('db down')), onUnhealthy: (r) => reasons.push(r) })
  await sleep(250)
  healthy = false
  await sleep(120)
  const before = pings(fake.messages.map((m) => m.text))
  await sleep(400)
  t.equal(pings(fake.messages.map((m) => m.text)), before, 'no pings while unhealthy')
  t.same(reasons, ['health check failed: db down'], 'onUnhealthy once per episode')
  t.ok(fake.messages.some((m) => m.text === 'STATUS=Unhealthy, watchdog paused: health check failed: db down'))
  t.equal(n.watchdog.unhealthyReason, 'health check failed: db down')
  healthy = true
  await sleep(250)
  t.ok(pings(fake.messages.map((m) => m.text)) > before, 'pings again once healthy')
  t.equal(fake.messages.filter((m) => m.text === 'STATUS=Serving 3 tenants').length, 2, 'the previous status was restored')
  t.equal(n.lastStatus, 'Serving 3 tenants')
  n.watchdog.stop()
  await n.close()
})

t.test('health check results: false and a timeout are unhealthy', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, WATCHDOG_USEC: '200000' } })
  const reasons: string[] = []
  n.watchdog.start({ healthCheck: () => false, onUnhealthy: (r) => reasons.push(r), reportStatus: false })
  await sleep(150)
  t.same(reasons, ['health check returned false'])
  n.watchdog.start({ healthCheck: () => new Promise(() => {}), healthCheckTimeoutMs: 20, onUnhealthy: (r) => reasons.push(r) })
  await sleep(150)
  t.equal(reasons[1], 'health check timed out after 20 ms')
  t.equal(pings(fake.messages.map((m) => m.text)), 0)
  t.notOk(fake.messages.some((m) => m.text.startsWith('STATUS=') && m.text.includes('returned false')), 'reportStatus: false sends no status')
  n.watchdog.stop()
  await n.close()
})

t.test('an event-loop stall longer than maxEventLoopDelayMs skips the ping', async (t) => {
  const fake = fakeManager()
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
  t.match(reasons[0], /^event loop delay \d+ ms > 150 ms$/)
  n.watchdog.stop()
  await n.close()
})

t.test('trigger() and ping()', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  t.equal(n.watchdog.enabled, false)
  t.equal(n.watchdog.start(), false, 'no WatchdogSec=: start() does nothing')
  await n.watchdog.ping()
  await n.watchdog.trigger()
  t.same((await fake.waitFor(2)).map((m) => m.text), ['WATCHDOG=1', 'WATCHDOG=trigger'])
  t.throws(() => createNotifier({ env: { WATCHDOG_USEC: '1000000' } }).watchdog.start({ pingIntervalMs: 1000 }), { field: 'watchdog.pingIntervalMs', message: /shorter than the watchdog timeout/ })
  await n.close()
})

t.test('a running watchdog never keeps the process alive', async (t) => {
  const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
  const fake = fakeManager()
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
