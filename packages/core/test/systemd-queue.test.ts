// The send queue against real systemd (the host's, 252): a frozen manager (SIGSTOP) and daemon-reexec.
// Run under the shared lock: flock /tmp/sdnotify-systemd.lock npx tap test/systemd-queue.test.ts
import { statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startManager, systemdSkipReason, waitForEvent, readEvents } from '@sdnotify/systemd-harness'

const fixture = fileURLToPath(new URL('../fixtures/queue-service.mjs', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping real-systemd tests: ${skip}`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('send queue under a real systemd user manager', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())
  t.comment(`systemd ${sd.version}`)

  t.test('frozen (SIGSTOP) during a burst: everything is taken once it resumes', async (t) => {
    const { unit, log } = await sd.notifyService(fixture, {})
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const pid = Number((await sd.show(unit)).MainPID)
    // No WatchdogSec= here: a manager frozen past it kills the service on SIGCONT (FACTS.md).
    process.kill(sd.pid, 'SIGSTOP')
    try {
      process.kill(pid, 'SIGUSR1')
      t.ok(await waitForEvent(log, 'burst-sent'), 'the service queued its burst')
      await sleep(1500)
      t.same(readEvents(log).filter((e) => e.event === 'burst'), [], 'still waiting while the manager is frozen')
    } finally {
      process.kill(sd.pid, 'SIGCONT')
    }
    const burst = await waitForEvent(log, 'burst', 10_000)
    t.same(burst?.counts, { sent: 1011 }, 'every send resolved true once the manager resumed')
    t.comment(`longest event-loop gap in the service meanwhile: ${String(burst?.maxGapMs)} ms`)
    const props = await sd.waitFor(unit, (p) => p.StatusErrno === '42')
    t.equal(props.StatusText, 'burst done', 'the last message, sent after the freeze, arrived')
    t.equal(props.ActiveState, 'active')
    t.same(readEvents(log).filter((e) => e.event === 'unhandled'), [])
    await sd.systemctl(['stop', unit])
  })

  t.test('daemon-reexec while the service sends: the socket stays, no send fails', async (t) => {
    const { unit, log } = await sd.notifyService(fixture, {})
    t.equal((await sd.systemctl(['start', unit])).code, 0)
    const pid = Number((await sd.show(unit)).MainPID)
    const socket = sd.path(sd.notifySocket)
    const before = statSync(socket).ino
    process.kill(pid, 'SIGUSR2')
    t.ok(await waitForEvent(log, 'stream-start'))
    await sleep(300)
    const reexec = await sd.systemctl(['daemon-reexec'])
    t.equal(reexec.code, 0, `daemon-reexec ${reexec.stderr}`)
    // systemd passes its notify socket to its new self (manager-serialize.c, "notify-fd"): same inode.
    t.equal(statSync(socket).ino, before, 'the notify socket survived daemon-reexec')
    const stream = await waitForEvent(log, 'stream', 10_000)
    t.same(Object.keys(stream?.counts ?? {}), ['sent'], `every send resolved true (${JSON.stringify(stream?.counts)})`)
    const props = await sd.waitFor(unit, (p) => p.StatusErrno === '43')
    t.equal(props.StatusText, 'stream done')
    t.equal(props.ActiveState, 'active')
    await sd.systemctl(['stop', unit])
  })
})
