// @sdnotify/fastify under real systemd: 252 (the host) and 257 (Debian trixie root) for Type=notify-reload.
// The app runs as nobody (uid 65534).
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  assertStartsListening,
  canConnect,
  DEBIAN_ROOT,
  debianRootSkipReason,
  type Manager,
  readEvents,
  startManager,
  systemdSkipReason,
  testPort,
  waitForEvent,
  waitForEvents,
} from '@sdnotify/systemd-harness'

const repo = fileURLToPath(new URL('../../..', import.meta.url))
const fixture = fileURLToPath(new URL('../fixtures/app.mjs', import.meta.url))
const example = fileURLToPath(new URL('../../../examples/fastify/app.mjs', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping real-systemd tests: ${skip}`)

const app = (sd: Manager, env: Record<string, string> = {}, lines: string[] = []) => sd.notifyApp(fixture, env, lines,
  'fastify')

t.test('Fastify under systemd 252', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())

  t.test('active only once the port accepts connections; StatusText shows the address', async (t) => {
    const { unit, port } = await app(sd)
    await assertStartsListening(t, sd, unit, port)
    await sd.systemctl(['stop', unit])
  })

  t.test('a slow plugin (after() taking 2 s) delays READY accordingly', async (t) => {
    const { unit, log, port } = await app(sd, { SDN_SLOW_PLUGIN_MS: '2000' })
    const started = Date.now()
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const took = Date.now() - started
    t.ok(took >= 2000, `systemctl start took ${took} ms (≥ 2000)`)
    t.ok(await waitForEvent(log, 'slow plugin loaded'))
    t.equal(await canConnect(port), true)
    await sd.systemctl(['stop', unit])
  })

  t.test('systemctl stop: STOPPING with its status, the in-flight request completes, close hooks run', async (t) => {
    const { unit, log, port } = await app(sd)
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const request = fetch(`http://127.0.0.1:${port}/slow`).then(async (res) => ({ status: res.status, body: await res.text() }))
    await waitForEvent(log, 'slow request started')
    const stopping = sd.systemctl(['stop', unit])
    const during = await sd.waitFor(unit, (p) => (p.StatusText ?? '').startsWith('Shutting down'), 3000)
    const draining = 'Shutting down: draining 1 connection'
    t.equal(during.StatusText, draining, 'STOPPING=1 + STATUS reached systemd while draining')
    t.equal(during.ActiveState, 'deactivating')
    t.same(await request, { status: 200, body: 'slow done' }, 'the request in flight completed')
    t.equal((await stopping).code, 0)
    const props = await sd.show(unit)
    t.equal(props.ActiveState, 'inactive')
    t.equal(props.Result, 'success', 'exited cleanly')
    t.ok(await waitForEvent(log, 'onClose'), 'onClose hooks ran')
  })

  t.test('watchdog: a route blocking the event loop 5 s gets it restarted (Result=watchdog)', async (t) => {
    const { unit, log, port } = await app(sd, {}, ['WatchdogSec=2', 'Restart=on-watchdog', 'RestartSec=3'])
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    void fetch(`http://127.0.0.1:${port}/block`).catch(() => undefined)
    const props = await sd.waitFor(unit, (p) => p.Result === 'watchdog', 15_000)
    t.equal(props.Result, 'watchdog')
    t.ok(readEvents(log).some((e) => e.event === 'blocking'))
    const restarted = await sd.waitFor(unit, (p) => p.NRestarts === '1' && p.ActiveState === 'active', 15_000)
    t.equal(restarted.NRestarts, '1', 'restarted by systemd')
    await sd.systemctl(['stop', unit])
  })

  t.test('watchdog: a failing healthCheck gets it restarted; a healthy idle service stays up', async (t) => {
    const failing = await app(sd, { SDN_FAIL_HEALTH_AFTER_MS: '1500' }, ['WatchdogSec=2', 'Restart=no'])
    const healthy = await app(sd, {}, ['WatchdogSec=2', 'Restart=no'])
    t.equal((await sd.systemctl(['start', failing.unit, healthy.unit])).code, 0)
    const props = await sd.waitFor(failing.unit, (p) => p.Result === 'watchdog', 15_000)
    t.equal(props.Result, 'watchdog')
    t.match((await waitForEvent(failing.log, 'unhealthy'))?.reason, /database unreachable/)
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const ok = await sd.show(healthy.unit)
    t.equal(ok.ActiveState, 'active', 'the healthy one is still up after 6 s')
    t.equal(ok.Result, 'success')
    await sd.systemctl(['stop', healthy.unit])
  })

  t.test('socket activation from a .socket unit serves a request', async (t) => {
    const port = testPort()
    sd.writeUnit('fastify-web.socket', ['[Socket]', `ListenStream=127.0.0.1:${port}`, ''].join('\n'))
    await sd.writeService('fastify-web', fixture, [],
      { service: ['Type=notify', `Environment=SDN_LOG=${sd.scratch}/web.log PORT=1`] })
    t.equal((await sd.systemctl(['start', 'fastify-web.socket'])).code, 0)
    const response = await fetch(`http://127.0.0.1:${port}/`)
    t.equal(await response.text(), 'hello')
    const props = await sd.waitFor('fastify-web.service', (p) => p.ActiveState === 'active', 5000)
    t.equal(props.StatusText, `Listening on http://127.0.0.1:${port}`, 'the passed socket, not PORT=1')
    await sd.systemctl(['stop', 'fastify-web.socket', 'fastify-web.service'])
  })

  t.test('examples/fastify runs as documented', async (t) => {
    const port = testPort()
    await sd.writeService('fastify-example', example, [],
      { service: ['Type=notify', `Environment=PORT=${port}`, 'WatchdogSec=10s'] })
    t.equal((await sd.systemctl(['start', 'fastify-example.service'])).code, 0)
    t.equal((await sd.show('fastify-example.service')).StatusText, `Listening on http://127.0.0.1:${port}`)
    t.same(await (await fetch(`http://127.0.0.1:${port}/`)).json(), { hello: 'world' })
    const lastRequest = (p: Record<string, string>) => (p.StatusText ?? '').startsWith('Last request')
    const served = await sd.waitFor('fastify-example.service', lastRequest, 3000)
    t.match(served.StatusText, /^Last request at /)
    t.equal((await sd.systemctl(['stop', 'fastify-example.service'])).code, 0)
  })
})

const skip257 = debianRootSkipReason()
t.test('Fastify under systemd 257: SIGHUP reload on Type=notify-reload', { skip: skip257 }, async (t) => {
  const sd = await startManager({ root: DEBIAN_ROOT, binds: [repo] })
  t.teardown(() => sd.stop())
  const { unit, log } = await app(sd, {}, ['Type=notify-reload'])
  t.equal((await sd.systemctl(['start', unit])).code, 0)
  const reload = await sd.systemctl(['reload', unit])
  t.equal(reload.code, 0, `reload succeeds ${reload.stderr}`)
  t.equal((await waitForEvents(log, 'reload', 1)).length, 1, 'the handler ran once')
  const props = await sd.show(unit)
  t.equal(props.ActiveState, 'active')
  t.match(props.StatusText, /^Listening on http:\/\/127\.0\.0\.1:\d+$/)
  await sd.systemctl(['stop', unit])
})
