// Real systemd (the host's, 252): a private user manager; services run as nobody (uid 65534).
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  bunSkipReason,
  type Manager,
  readEvents,
  serviceAddonSkipReason,
  startManager,
  systemdSkipReason,
  waitForEvent,
} from '@sdnotify/systemd-harness'

const fixture = fileURLToPath(new URL('../fixtures/service.mjs', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping real-systemd tests: ${skip}`)

const events = readEvents
const event = waitForEvent

/** A Type=notify service running the fixture with SDN_* settings; returns its unit name and event log. */
const service = (sd: Manager, env: Record<string, string>, lines: string[] = []) => sd.notifyService(fixture, env,
  lines)

t.test('systemd 252 user manager', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())
  t.comment(`systemd ${sd.version}`)

  for (const transport of ['koffi', 'unix-dgram']) {
    // unix-dgram is compiled at install for the test runner's node: a service runtime of another ABI (the runtime
    // matrix, scripts/runtime-matrix.mjs) cannot load it. koffi ships prebuilt Node-API binaries and loads anywhere.
    const noAddon = transport === 'unix-dgram' ? serviceAddonSkipReason() : undefined
    const title = `READY from ${transport} is accepted under NotifyAccess=main, as a non-root user`
    t.test(title, { skip: noAddon && `unix-dgram cannot load: ${noAddon}` }, async (t) => {
      const { unit, log } = await service(sd, { SDN_TRANSPORT: transport, SDN_STATUS: `Serving via ${transport}` })
      const start = await sd.systemctl(['start', unit])
      t.equal(start.code, 0, `systemctl start succeeds ${start.stderr}`)
      const props = await sd.show(unit)
      t.equal(props.ActiveState, 'active')
      t.equal(props.SubState, 'running')
      t.equal(props.StatusText, `Serving via ${transport}`)
      const ready = await event(log, 'ready')
      t.equal(ready?.transport, transport, 'the requested transport sent it')
      t.match(ready?.native, [transport === 'koffi' ? /koffi/ : /unix_dgram/], 'only its native module was loaded')
      const started = events(log).find((e) => e.event === 'start')
      t.equal(started?.uid, 65534, 'the service ran as nobody')
      t.equal(started?.execPath, sd.node, `the service ran on ${sd.node}`)
      await sd.systemctl(['stop', unit])
    })
  }

  t.test('auto picks koffi when it is installed', async (t) => {
    const { unit, log } = await service(sd, { SDN_STATUS: 'auto' })
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    t.equal((await event(log, 'ready'))?.transport, 'koffi')
    await sd.systemctl(['stop', unit])
  })

  t.test('exec (systemd-notify as a child) is refused under NotifyAccess=main', async (t) => {
    const { unit, log } = await service(sd, { SDN_TRANSPORT: 'exec', SDN_STATUS: 'exec' }, ['TimeoutStartSec=3s'])
    const start = await sd.systemctl(['start', unit])
    t.not(start.code, 0, 'the start fails')
    const props = await sd.show(unit)
    t.equal(props.Result, 'timeout', 'systemd never saw READY=1')
    t.equal((await event(log, 'warning'))?.code, 'SDNOTIFY_EXEC_FALLBACK', 'the exec fallback warned')
  })

  t.test('exec is accepted under NotifyAccess=all: 50 consecutive starts, no failure', async (t) => {
    const { unit } = await service(sd, { SDN_TRANSPORT: 'exec', SDN_STATUS: 'exec ok' },
      ['NotifyAccess=all', 'TimeoutStartSec=10s'])
    let failures = 0
    for (let i = 0; i < 50; i++) {
      const start = await sd.systemctl(['start', unit])
      const props = await sd.show(unit)
      if (start.code !== 0 || props.ActiveState !== 'active' || props.StatusText !== 'exec ok') failures++
      await sd.systemctl(['stop', unit])
    }
    t.equal(failures, 0, '50 of 50 starts became active')
  })

  t.test('watchdog: a healthy service stays up on automatic pings', async (t) => {
    const { unit, log } = await service(sd, { SDN_WATCHDOG: '1', SDN_STATUS: 'healthy' },
      ['WatchdogSec=2', 'Restart=on-watchdog'])
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    await new Promise((resolve) => setTimeout(resolve, 6000))
    const props = await sd.show(unit)
    t.equal(props.ActiveState, 'active')
    t.equal(props.NRestarts, '0', 'never restarted in 6 s')
    t.match(await event(log, 'watchdog'), { started: true, intervalMs: 2000 })
    await sd.systemctl(['stop', unit])
  })

  t.test('watchdog: a blocked event loop gets the service restarted (Result=watchdog)', async (t) => {
    const { unit, log } = await service(sd, { SDN_WATCHDOG: '1', SDN_BLOCK_AFTER_MS: '1000' },
      ['WatchdogSec=2', 'Restart=on-watchdog', 'RestartSec=3'])
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const props = await sd.waitFor(unit, (p) => p.Result === 'watchdog', 15_000)
    t.equal(props.Result, 'watchdog')
    t.ok(events(log).some((e) => e.event === 'blocking'))
    const restarted = await sd.waitFor(unit, (p) => p.NRestarts === '1' && p.ActiveState === 'active', 15_000)
    t.equal(restarted.NRestarts, '1', 'systemd restarted it')
    t.equal(events(log).filter((e) => e.event === 'start').length, 2, 'a second process started')
    await sd.systemctl(['stop', unit])
  })

  t.test('watchdog: a failing health check gets the service restarted', async (t) => {
    const { unit, log } = await service(sd,
      { SDN_WATCHDOG: '1', SDN_FAIL_HEALTH_AFTER_MS: '1500', SDN_STATUS: 'Serving' }, ['WatchdogSec=2', 'Restart=no'])
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const props = await sd.waitFor(unit, (p) => p.Result === 'watchdog', 15_000)
    t.equal(props.Result, 'watchdog')
    t.equal((await sd.waitFor(unit, (p) => p.ActiveState === 'failed', 10_000)).ActiveState, 'failed',
      'killed, not restarted (Restart=no)')
    t.match((await event(log, 'unhealthy'))?.reason, /health check failed: database unreachable/)
  })

  t.test('STOPPING=1 puts the unit in deactivating while the process drains', async (t) => {
    const { unit, log } = await service(sd, { SDN_STATUS: 'up' })
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    await sd.systemctl(['kill', '-s', 'SIGUSR2', unit])
    const props = await sd.waitFor(unit, (p) => p.ActiveState === 'deactivating', 5000)
    t.equal(props.ActiveState, 'deactivating', 'systemd saw STOPPING=1 (no stop was requested)')
    t.equal(props.StatusText, 'Draining')
    const after = await sd.waitFor(unit, (p) => p.ActiveState === 'inactive', 10_000)
    t.equal(after.ActiveState, 'inactive')
    t.ok(await event(log, 'stopping'))
  })

  t.test('systemctl stop: STOPPING and a clean exit', async (t) => {
    const { unit, log } = await service(sd, { SDN_STATUS: 'up' })
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    t.equal((await sd.systemctl(['stop', unit])).code, 0)
    const props = await sd.show(unit)
    t.equal(props.ActiveState, 'inactive')
    t.equal(props.Result, 'success')
    t.ok(events(log).some((e) => e.event === 'sigterm'), 'the service sent STOPPING=1 and exited 0')
  })

  t.test('EXTEND_TIMEOUT_USEC carries a start past TimeoutStartSec', async (t) => {
    const slow = { SDN_START_DELAY_MS: '4000', SDN_STATUS: 'migrated' }
    const extended = await service(sd, { ...slow, SDN_EXTEND_MS: '1500' }, ['TimeoutStartSec=2s'])
    t.equal((await sd.systemctl(['start', extended.unit])).code, 0, 'starts with the extension')
    t.equal((await sd.show(extended.unit)).ActiveState, 'active')
    await sd.systemctl(['stop', extended.unit])
    const plain = await service(sd, slow, ['TimeoutStartSec=2s'])
    t.not((await sd.systemctl(['start', plain.unit])).code, 0, 'fails without it')
    t.equal((await sd.show(plain.unit)).Result, 'timeout')
  })

  t.test('ERRNO shows as StatusErrno', async (t) => {
    const { unit } = await service(sd, { SDN_ERRNO: '5', SDN_STATUS: 'Disk error, serving read-only' })
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const props = await sd.show(unit)
    t.equal(props.StatusErrno, '5')
    t.equal(props.StatusText, 'Disk error, serving read-only')
    await sd.systemctl(['stop', unit])
  })

  t.test('FDSTORE through koffi (SCM_RIGHTS) and BARRIER', async (t) => {
    const { unit, log } = await service(sd, { SDN_STORE_FD: '1', SDN_BARRIER: '1' }, ['FileDescriptorStoreMax=4'])
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const props = await sd.show(unit, ['NFileDescriptorStore', 'ActiveState'])
    t.equal(props.NFileDescriptorStore, '1', 'systemd holds the stored descriptor')
    const acknowledged = await event(log, 'barrier')
    t.match(acknowledged, { ok: true },
      'the barrier was acknowledged (on Bun too: core reads the pipe with a fs stream there)')
    await sd.systemctl(['stop', unit])
  })

  const noListenFd = bunSkipReason('http.Server.listen({ fd }) ignores the descriptor (it binds a random port)')
  t.test('socket activation: a .socket unit passes the listening socket', { skip: noListenFd }, async (t) => {
    const port = 20000 + (process.pid % 20000)
    sd.writeUnit('web.socket', ['[Socket]', `ListenStream=127.0.0.1:${port}`, 'FileDescriptorName=http', ''].join('\n'))
    await sd.writeService('web', fixture, [],
      { service: ['Type=notify', `Environment=SDN_LOG=${sd.scratch}/web.log SDN_STATUS=activated`] })
    t.equal((await sd.systemctl(['start', 'web.socket'])).code, 0)
    const response = await fetch(`http://127.0.0.1:${port}/`)
    t.match(await response.text(), /^hello from \d+ via fd 3/, 'the service answered on the passed socket')
    // The request can be answered a moment before systemd has processed READY=1.
    const props = await sd.waitFor('web.service', (p) => p.ActiveState === 'active', 5000)
    t.equal(props.ActiveState, 'active')
    t.equal(props.StatusText, 'activated')
    t.match(await event(`${sd.scratch}/web.log`, 'listening'), { fds: [{ fd: 3, name: 'http' }] })
    await sd.systemctl(['stop', 'web.socket', 'web.service'])
  })
})
