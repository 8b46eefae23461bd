// Newer systemd (257, from a Debian trixie root; see scripts/debian-root.sh): OpenFile= and Type=notify-reload.
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DEBIAN_ROOT, debianRootSkipReason, readEvents, startManager, waitForEvents } from '@sdnotify/systemd-harness'

const repo = fileURLToPath(new URL('../../..', import.meta.url))
const fixture = fileURLToPath(new URL('../fixtures/service.mjs', import.meta.url))
const skip = debianRootSkipReason()
if (skip) t.comment(`skipping systemd 257 tests: ${skip}`)

const events = readEvents
const eventCount = waitForEvents

t.test('systemd 257 (Debian trixie root)', { skip }, async (t) => {
  const sd = await startManager({ root: DEBIAN_ROOT, binds: [repo] })
  t.teardown(() => sd.stop())
  t.ok(sd.version >= 253, `systemd ${sd.version} supports OpenFile= and Type=notify-reload`)

  t.test('fd transport: OpenFile= hands us a connected notify socket; pure JS, accepted from a non-root ' +
    'service', async (t) => {
    const log = `${sd.scratch}/fd.log`
    await sd.writeService('fdsvc', fixture, [], {
      service: [
        'Type=notify',
        `OpenFile=${sd.notifySocket}:notify`,
        `Environment=SDN_LOG=${log} "SDN_STATUS=Ready via OpenFile"`,
        'WatchdogSec=2',
        'Environment=SDN_WATCHDOG=1',
        'TimeoutStartSec=15s',
      ],
    })
    t.equal((await sd.systemctl(['start', 'fdsvc.service'])).code, 0)
    const props = await sd.show('fdsvc.service')
    t.equal(props.ActiveState, 'active')
    t.equal(props.StatusText, 'Ready via OpenFile')
    const [ready] = await eventCount(log, 'ready', 1)
    t.equal(ready?.transport, 'fd', 'the fd transport sent READY=1')
    t.same(ready?.native, [], 'no native module was loaded')
    await new Promise((resolve) => setTimeout(resolve, 5000))
    const later = await sd.show('fdsvc.service')
    t.equal(later.ActiveState, 'active', 'watchdog pings over the fd kept WatchdogSec=2 happy for 5 s')
    t.equal(later.NRestarts, '0')
    await sd.systemctl(['stop', 'fdsvc.service'])
  })

  t.test('Type=notify-reload: RELOADING=1 with MONOTONIC_USEC, then READY=1', async (t) => {
    const log = `${sd.scratch}/reload.log`
    await sd.writeService('reloader', fixture, [], {
      service: [
        'Type=notify-reload',
        `Environment=SDN_LOG=${log} SDN_STATUS=Serving SDN_RELOAD_MS=500`,
        'TimeoutStartSec=15s',
      ],
    })
    t.equal((await sd.systemctl(['start', 'reloader.service'])).code, 0)
    const started = Date.now()
    const reload = await sd.systemctl(['reload', 'reloader.service'])
    const took = Date.now() - started
    t.equal(reload.code, 0, `systemctl reload succeeds ${reload.stderr}`)
    t.ok(took >= 450, `systemctl reload waited for READY=1 (${took} ms, the handler takes 500 ms)`)
    t.equal(events(log).filter((e) => e.event === 'sighup').length, 1, 'the reload handler ran once')
    t.equal((await eventCount(log, 'reloaded', 1)).length, 1)
    const props = await sd.show('reloader.service')
    t.equal(props.ActiveState, 'active')
    t.equal(props.StatusText, 'Serving')
    await sd.systemctl(['stop', 'reloader.service'])
  })
})
