// `pnpm demo`: runs examples/basic as a real Type=notify unit with WatchdogSec=2 under a private systemd
// manager, and prints what systemd sees: start, READY, status, restarts under load with the listening socket in
// systemd's fd store (no request fails), watchdog pings, a stall, the restart.
import { fileURLToPath } from 'node:url'
import { startLoad, startManager, systemdSkipReason } from '@sdnotify/systemd-harness'

const server = fileURLToPath(new URL('../examples/basic/server.mjs', import.meta.url))
const skip = systemdSkipReason()
if (skip) {
  console.log(`The demo cannot run here: ${skip}.`)
  console.log('It starts a private systemd user manager in its own cgroup and mount namespace, which needs root on')
  console.log('a Linux machine with systemd installed (it need not be PID 1). Try: sudo npm run demo')
  console.log('Or run the example under your own systemd with the unit file examples/basic/sdnotify-demo.service.')
  process.exit(1)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const t0 = Date.now()
const say = (text) => console.log(`[${((Date.now() - t0) / 1000).toFixed(3).padStart(7)}s] ${text}`)
const port = 18080 + (process.pid % 1000)

const sd = await startManager()
try {
  say(`private systemd ${sd.version} user manager started (pid ${sd.pid}); the service runs as nobody`)
  await sd.writeService('sdnotify-demo', server, [], {
    // A failed unit loses its fd store: frequent restarts must not hit the start rate limit.
    unit: ['StartLimitIntervalSec=0'],
    service: [
      'Type=notify',
      `Environment=PORT=${port}`,
      'WatchdogSec=2',
      'FileDescriptorStoreMax=1',
      'Restart=on-watchdog',
      'RestartSec=1',
      'TimeoutStartSec=10',
    ],
  })
  const settings = 'Type=notify, WatchdogSec=2, FileDescriptorStoreMax=1, Restart=on-watchdog'
  say(`systemctl --user start sdnotify-demo.service  (${settings})`)
  const started = Date.now()
  const start = await sd.systemctl(['start', 'sdnotify-demo.service'])
  if (start.code !== 0) throw new Error(`start failed: ${start.stderr}`)
  const props = await sd.show('sdnotify-demo.service')
  say(`READY=1 after ${Date.now() - started} ms: ActiveState=${props.ActiveState}, MainPID=${props.MainPID}`)
  say(`StatusText: "${props.StatusText}"`)
  const response = await fetch(`http://127.0.0.1:${port}/`)
  say(`GET / -> ${response.status} ${(await response.text()).trim()}  (the port was open when systemd said active)`)

  // Zero-downtime restarts: the service stored its listening socket (FDSTORE=1) before READY=1; systemd keeps it
  // while the restart job runs and passes it to the next process. Connections wait in its backlog meanwhile.
  say('3 × systemctl restart while 4 clients make fresh connections (the listening socket waits in the fd store)')
  const load = startLoad({ port })
  await sleep(300)
  for (let i = 0; i < 3; i++) {
    const restart = await sd.systemctl(['restart', 'sdnotify-demo.service'])
    if (restart.code !== 0) throw new Error(`restart failed: ${restart.stderr}`)
    await sleep(400)
  }
  const result = await load.stop()
  const total = result.ok + result.refused + result.inFlight
  const failed = `${result.refused} refused, ${result.inFlight} failed in flight`
  say(`3 × systemctl restart under load: ${total} requests, ${failed}`)
  const stored = await sd.show('sdnotify-demo.service', ['NFileDescriptorStore', 'MainPID'])
  const waited = Math.round(result.maxLatencyMs)
  const now = `NFileDescriptorStore=${stored.NFileDescriptorStore}, MainPID=${stored.MainPID}`
  say(`${now}; the slowest request waited ${waited} ms in the backlog`)

  let lastPing = ''
  const watchPings = async (ms) => {
    const until = Date.now() + ms
    while (Date.now() < until) {
      const p = await sd.show('sdnotify-demo.service',
        ['WatchdogTimestampMonotonic', 'ActiveState', 'SubState', 'Result', 'NRestarts', 'MainPID'])
      if (p.WatchdogTimestampMonotonic !== lastPing && p.WatchdogTimestampMonotonic !== '0') {
        if (lastPing) say('watchdog ping (WATCHDOG=1) received by systemd')
        lastPing = p.WatchdogTimestampMonotonic
      }
      await sleep(50)
    }
  }
  await watchPings(3500)

  say('GET /stall: the handler blocks the event loop for 10 s (a hung process)')
  const firstPid = (await sd.show('sdnotify-demo.service')).MainPID
  await fetch(`http://127.0.0.1:${port}/stall`)
  const stalled = Date.now()
  let reported = false
  while (Date.now() - stalled < 15_000) {
    const p = await sd.show('sdnotify-demo.service',
      ['ActiveState', 'SubState', 'Result', 'NRestarts', 'MainPID', 'StatusText'])
    if (!reported && p.Result === 'watchdog') {
      say(`systemd: no ping for 2 s -> Result=watchdog, killing pid ${firstPid} (SubState=${p.SubState})`)
      reported = true
    }
    if (reported && p.ActiveState === 'active' && p.MainPID !== firstPid && p.MainPID !== '0') {
      say(`restarted: NRestarts=${p.NRestarts}, new MainPID=${p.MainPID}, ActiveState=active (READY=1 again)`)
      say(`StatusText: "${p.StatusText}"`)
      break
    }
    await sleep(50)
  }
  if (!reported) throw new Error('systemd did not report Result=watchdog')
  const again = await fetch(`http://127.0.0.1:${port}/`)
  say(`GET / -> ${again.status} ${(await again.text()).trim()}`)
  await sd.systemctl(['stop', 'sdnotify-demo.service'])
  say('systemctl --user stop: STOPPING=1, clean exit. Demo done.')
} catch (error) {
  console.error(`demo failed: ${error.message}`)
  console.error(sd.managerLog().split('\n').slice(-20).join('\n'))
  process.exitCode = 1
} finally {
  await sd.stop()
}
