// @sdnotify/nest under real systemd 252: examples/nest compiled to CommonJS (as Nest CLI apps are), on
// platform-express and platform-fastify, running as nobody (uid 65534).
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  assertStartsListening,
  type Manager,
  readEvents,
  startManager,
  systemdSkipReason,
  waitForEvent,
} from '@sdnotify/systemd-harness'

const main = fileURLToPath(new URL('../../../examples/nest/dist/main.js', import.meta.url))
const hungInit = fileURLToPath(new URL('../fixtures/hung-init.mjs', import.meta.url))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping real-systemd tests: ${skip}`)

const app = (sd: Manager, env: Record<string, string> = {}, lines: string[] = []) => sd.notifyApp(main, env, lines,
  'nest', 'EVENT_LOG')

t.test('NestJS under systemd 252', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())

  for (const platform of ['express', 'fastify']) {
    t.test(`platform-${platform}: active only once the port accepts connections; StatusText shows the ` +
      'address', async (t) => {
      const { unit, port } = await app(sd, { PLATFORM: platform })
      await assertStartsListening(t, sd, unit, port)
      t.same(await (await fetch(`http://127.0.0.1:${port}/`)).json(), { hello: 'world' })
      await sd.systemctl(['stop', unit])
    })

    t.test(`platform-${platform}: systemctl stop: STOPPING seen, request in flight completes, ` +
      'onApplicationShutdown runs', async (t) => {
      const { unit, log, port } = await app(sd, { PLATFORM: platform }, ['TimeoutStopSec=15s'])
      t.equal((await sd.systemctl(['start', unit])).code, 0)
      const request = fetch(`http://127.0.0.1:${port}/slow`).then(async (res) => ({ status: res.status, body: await res.text() }))
      await waitForEvent(log, 'slow request started')
      const started = Date.now()
      const stopping = sd.systemctl(['stop', unit])
      const during = await sd.waitFor(unit, (p) => (p.StatusText ?? '').startsWith('Shutting down (SIGTERM)'), 3000)
      t.match(during.StatusText, /^Shutting down \(SIGTERM\)/, 'STOPPING=1 with its status, while draining')
      t.same(await request, { status: 200, body: 'slow done' }, 'the request in flight completed')
      t.equal((await stopping).code, 0)
      const took = Date.now() - started
      t.ok(took < 5000, `stopped ${took} ms after SIGTERM: keep-alive did not hold the close open`)
      t.match(await waitForEvent(log, 'onApplicationShutdown'), { signal: 'SIGTERM' })
      t.equal((await sd.show(unit)).ActiveState, 'inactive')
    })
  }

  t.test('onModuleInit longer than TimeoutStartSec: starts with extendStartTimeout, fails without it', async (t) => {
    // TimeoutStartSec=8s leaves node and Nest time to boot under load (two at once, with coverage collected)
    // before the first extension is sent.
    const slow = { MIGRATION_MS: '14000' }
    const extended = await app(sd, slow, ['TimeoutStartSec=8s'])
    const plain = await app(sd, { ...slow, EXTEND_START: '0' }, ['TimeoutStartSec=8s'])
    const [start, plainStart] = await Promise.all([
      sd.systemctl(['start', extended.unit]),
      sd.systemctl(['start', plain.unit]),
    ])
    t.equal(start.code, 0, `starts with the extension ${start.stderr}`)
    t.ok(await waitForEvent(extended.log, 'migrated'))
    t.equal((await sd.show(extended.unit)).ActiveState, 'active')
    await sd.systemctl(['stop', extended.unit])
    t.not(plainStart.code, 0, 'fails without it')
    t.equal((await sd.show(plain.unit)).Result, 'timeout')
  })

  t.test('a hung onModuleInit: extended past TimeoutStartSec, then maxMs ends it in a start timeout', async (t) => {
    // TimeoutStartSec=6s alone would fail it at 6 s; maxMs=12000 (from the module's construction) at about 13 s.
    const { unit, log } = await sd.notifyService(hungInit, { MAX_MS: '12000' }, ['TimeoutStartSec=6s'], 'nest-hung')
    const began = Date.now()
    const start = sd.systemctl(['start', unit])
    t.ok(await waitForEvent(log, 'init started', 10_000), 'onModuleInit began')
    await sleep(Math.max(0, began + 7500 - Date.now()))
    t.equal((await sd.show(unit)).ActiveState, 'activating', 'still starting 1.5 s after TimeoutStartSec: extended')
    const result = await start
    t.not(result.code, 0, 'the start failed')
    t.equal((await sd.show(unit)).Result, 'timeout', 'by a start timeout, once the extensions stopped')
  })

  t.test('watchdog: a blocked event loop and a failing terminus indicator each get it restarted; a healthy app stays ' +
    'up', async (t) => {
    const blocked = await app(sd, {}, ['WatchdogSec=2', 'Restart=on-watchdog', 'RestartSec=3'])
    const dbDown = await app(sd, { DB_DOWN_AFTER_MS: '1500' }, ['WatchdogSec=2', 'Restart=no'])
    const healthy = await app(sd, {}, ['WatchdogSec=2'])
    t.equal((await sd.systemctl(['start', blocked.unit, dbDown.unit, healthy.unit])).code, 0)
    void fetch(`http://127.0.0.1:${blocked.port}/block`).catch(() => undefined)
    t.equal((await sd.waitFor(blocked.unit, (p) => p.Result === 'watchdog', 15_000)).Result, 'watchdog',
      'blocked loop: Result=watchdog')
    t.ok(readEvents(blocked.log).some((e) => e.event === 'blocking'))
    const restarted = await sd.waitFor(blocked.unit, (p) => p.NRestarts === '1' && p.ActiveState === 'active', 20_000)
    t.equal(restarted.NRestarts, '1', 'restarted')
    const down = await sd.waitFor(dbDown.unit, (p) => p.Result === 'watchdog', 15_000)
    t.equal(down.Result, 'watchdog', 'failing terminus indicator: Result=watchdog')
    const ok = await sd.show(healthy.unit)
    t.equal(ok.ActiveState, 'active', 'the healthy app stayed up')
    t.equal(ok.NRestarts, '0')
    await sd.systemctl(['stop', blocked.unit, healthy.unit])
  })
})
