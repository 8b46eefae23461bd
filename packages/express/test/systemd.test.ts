// @sdnotify/express under real systemd 252; the app runs as nobody (uid 65534).
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  assertStartsListening,
  type Manager,
  readEvents,
  startManager,
  systemdSkipReason,
  testPort,
  waitForEvent,
} from '@sdnotify/systemd-harness'

const fixture = fileURLToPath(new URL('../fixtures/app.mjs', import.meta.url))
const example = fileURLToPath(new URL('../../../examples/express/app.mjs', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping real-systemd tests: ${skip}`)

const app = (sd: Manager, env: Record<string, string> = {}, lines: string[] = []) =>
  sd.notifyApp(fixture, env, lines, 'express')

t.test('Express under systemd 252', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())

  for (const [label, env, body] of [
    ['listen(app)', {}, 'hello'],
    ['attach() on a plain node:http server', { SDN_PLAIN: '1' }, 'plain'],
  ] as const) {
    t.test(`${label}: active only once the port accepts connections; StatusText shows the address`, async (t) => {
      const { unit, port } = await app(sd, env)
      await assertStartsListening(t, sd, unit, port)
      t.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), body)
      t.equal((await sd.systemctl(['stop', unit])).code, 0)
      t.equal((await sd.show(unit)).Result, 'success')
    })
  }

  t.test(
    'systemctl stop with a 2 s request in flight: it completes, STOPPING seen, clean exit within TimeoutStopSec',
    async (t) => {
      const { unit, log, port } = await app(sd, {}, ['TimeoutStopSec=10s'])
      t.equal((await sd.systemctl(['start', unit])).code, 0)
      const request = fetch(`http://127.0.0.1:${port}/slow`).then(async (res) => ({
        status: res.status,
        body: await res.text(),
      }))
      await waitForEvent(log, 'slow request started')
      const started = Date.now()
      const stopping = sd.systemctl(['stop', unit])
      const during = await sd.waitFor(unit, (p) => (p.StatusText ?? '').startsWith('Shutting down: draining'), 3000)
      t.equal(during.StatusText, 'Shutting down: draining 1 connection', 'STOPPING=1 with the drain progress')
      t.same(await request, { status: 200, body: 'slow done' })
      t.equal((await stopping).code, 0)
      t.ok(Date.now() - started < 10_000, `stopped in ${Date.now() - started} ms`)
      const props = await sd.show(unit)
      t.equal(props.Result, 'success', 'exited cleanly, not killed')
      t.match(await waitForEvent(log, 'exit'), { code: 0 })
    }
  )

  t.test('socket activation from a .socket unit serves a request; a port-based start still works', async (t) => {
    const port = testPort()
    sd.writeUnit('express-web.socket', ['[Socket]', `ListenStream=127.0.0.1:${port}`, ''].join('\n'))
    await sd.writeService('express-web', fixture, [], {
      service: ['Type=notify', `Environment=SDN_LOG=${sd.scratch}/express-web.log PORT=1`],
    })
    t.equal((await sd.systemctl(['start', 'express-web.socket'])).code, 0)
    t.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello')
    const props = await sd.waitFor('express-web.service', (p) => p.ActiveState === 'active', 5000)
    t.equal(props.StatusText, `Listening on http://127.0.0.1:${port}`, 'the passed socket, not PORT=1')
    await sd.systemctl(['stop', 'express-web.socket', 'express-web.service'])
  })

  t.test('watchdog: a blocked event loop gets it restarted; a healthy app stays up', async (t) => {
    const blocked = await app(sd, {}, ['WatchdogSec=2', 'Restart=on-watchdog', 'RestartSec=3'])
    const healthy = await app(sd, {}, ['WatchdogSec=2'])
    t.equal((await sd.systemctl(['start', blocked.unit, healthy.unit])).code, 0)
    void fetch(`http://127.0.0.1:${blocked.port}/block`).catch(() => undefined)
    t.equal((await sd.waitFor(blocked.unit, (p) => p.Result === 'watchdog', 15_000)).Result, 'watchdog')
    t.ok(readEvents(blocked.log).some((e) => e.event === 'blocking'))
    t.equal(
      (await sd.waitFor(blocked.unit, (p) => p.NRestarts === '1' && p.ActiveState === 'active', 15_000)).NRestarts,
      '1'
    )
    const ok = await sd.show(healthy.unit)
    t.equal(ok.ActiveState, 'active', 'the healthy one stayed up')
    t.equal(ok.NRestarts, '0')
    await sd.systemctl(['stop', blocked.unit, healthy.unit])
  })

  t.test('examples/express runs as documented', async (t) => {
    const port = testPort()
    await sd.writeService('express-example', example, [], {
      service: ['Type=notify', `Environment=PORT=${port}`, 'WatchdogSec=10s'],
    })
    t.equal((await sd.systemctl(['start', 'express-example.service'])).code, 0)
    t.equal((await sd.show('express-example.service')).StatusText, `Listening on http://127.0.0.1:${port}`)
    t.same(await (await fetch(`http://127.0.0.1:${port}/`)).json(), { hello: 'world' })
    t.equal((await sd.systemctl(['stop', 'express-example.service'])).code, 0)
    t.equal((await sd.show('express-example.service')).Result, 'success')
  })

  t.test('a port already in use: the start fails and systemctl shows why', async (t) => {
    const port = testPort()
    await sd.writeService('express-holder', example, [], { service: ['Type=notify', `Environment=PORT=${port}`] })
    await sd.writeService('express-clash', example, [], { service: ['Type=notify', `Environment=PORT=${port}`] })
    t.equal((await sd.systemctl(['start', 'express-holder.service'])).code, 0)
    t.not((await sd.systemctl(['start', 'express-clash.service'])).code, 0)
    const props = await sd.show('express-clash.service')
    t.equal(props.StatusErrno, '98', 'ERRNO=98 (EADDRINUSE)')
    t.match(props.StatusText, /^Failed to listen: listen EADDRINUSE/)
    await sd.systemctl(['stop', 'express-holder.service'])
  })
})
