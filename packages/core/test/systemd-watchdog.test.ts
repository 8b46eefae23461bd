// Real systemd (the host's, 252): the watchdog keeps a service that recovers, and says what happened.
// Run under the shared lock: flock /tmp/sdnotify-systemd.lock npx tap test/systemd-watchdog.test.ts
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { readEvents, startManager, systemdSkipReason, waitForEvent } from '@sdnotify/systemd-harness'

const fixture = fileURLToPath(new URL('../fixtures/watchdog-service.mjs', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping real-systemd tests: ${skip}`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('watchdog under systemd 252', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())
  // Both services run at once (Restart=no: a watchdog kill leaves the unit failed, Result=watchdog).
  // WatchdogSec=4: pings every 2 s, checks may take 666 ms, re-check 0.5 s after a failure. The 2nd check
  // (at 2 s) hangs for 1 s and times out at 2.67 s: the re-check waits for that call (it is not made again) and
  // pings when it passes, at 3 s. (When the next check came a full interval after a tick ended, that was 5 s
  // after the last ping, and systemd killed it: Result=watchdog.)
  const hang = { SDN_HANG_CHECK: '2', SDN_HANG_MS: '1000' }
  const transient = await sd.notifyService(fixture, hang, ['WatchdogSec=4', 'Restart=no'])
  // WatchdogSec=20: pings every 10 s, re-check 2.5 s after a failure; a 2 s stall over a 1 s threshold.
  const stallEnv = { SDN_MAX_DELAY_MS: '1000', SDN_STALL_AFTER_MS: '1000', SDN_STALL_MS: '2000' }
  const stall = await sd.notifyService(fixture, stallEnv, ['WatchdogSec=20', 'Restart=no'])
  t.equal((await sd.systemctl(['start', transient.unit])).code, 0)
  t.equal((await sd.systemctl(['start', stall.unit])).code, 0)

  await t.test('a stall that ends shows in StatusText while it is re-checked, and the service lives on', async (t) => {
    t.ok(await waitForEvent(stall.log, 'stalled', 10_000), 'the service stalled for 2 s')
    // The next scheduled tick is 10 s away: the sentinel timer reports the stall the moment it ends.
    const unhealthy = await sd.waitFor(stall.unit, (p) => p.StatusText?.startsWith('Unhealthy') ?? false, 2000)
    t.match(unhealthy.StatusText,
      /^Unhealthy, watchdog paused: event loop blocked for \d+ to \d+ ms \(limit 1000 ms\)$/)
    const after = await sd.waitFor(stall.unit, (p) => p.StatusText === 'Serving', 6000)
    t.equal(after.StatusText, 'Serving', 'the status is restored once a re-check finds the loop well')
    t.equal(after.ActiveState, 'active')
    t.equal(readEvents(stall.log).filter((e) => e.event === 'unhealthy').length, 1)
  })

  await t.test('one health check that times out costs no restart', async (t) => {
    const unhealthy = await waitForEvent(transient.log, 'unhealthy', 10_000)
    t.equal(unhealthy?.reason, 'health check timed out after 666 ms')
    await sleep(6000) // longer than WatchdogSec=4 after the failure
    const props = await sd.show(transient.unit)
    t.equal(props.ActiveState, 'active', `still active (Result=${props.Result})`)
    t.equal(props.StatusText, 'Serving')
    t.same(readEvents(transient.log).filter((e) => e.event === 'error'), [], 'no errors')
  })

  await sd.systemctl(['stop', transient.unit, stall.unit])
})
