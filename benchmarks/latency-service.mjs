// Runs as a systemd service (as nobody, NotifyAccess=all): sends STATUS messages to the real manager with
// each method, one at a time into an idle socket (gaps.mjs), in interleaved rounds, and writes the
// durations (µs) as JSON to $BENCH_OUT.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createNotifier } from '@sdnotify/core'
import { measureInRounds, timeFloor, timeSends } from './gaps.mjs'

const count = Number(process.env.BENCH_COUNT)
const spawnCount = Number(process.env.BENCH_SPAWN_COUNT)
const methods = []
const notifiers = []

for (const transport of ['koffi', 'unix-dgram', 'exec']) {
  const notifier = createNotifier({ transport, onWarning: () => {} })
  notifiers.push(notifier)
  // Spawning methods are timed after an idle gap only: a new process per message has no warm state.
  const gaps = transport === 'exec' ? ['idle'] : undefined
  methods.push({
    name: transport,
    n: gaps ? spawnCount : count,
    time: (n) => timeSends(n, (i) => notifier.status(`${transport} ${i}`), gaps),
  })
}
if (process.env.BENCH_SD_NOTIFY) {
  const sdNotify = createRequire(process.env.BENCH_SD_NOTIFY)('sd-notify')
  methods.push({
    name: 'sd-notify (npm)',
    n: count,
    time: (n) => timeSends(n, async (i) => sdNotify.sendState(`STATUS=sd-notify ${i}\n`)),
  })
}
const python = 'import socket,os; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); ' +
  's.sendto(b\'STATUS=python\', os.environ[\'NOTIFY_SOCKET\'])'
methods.push({
  name: 'python3 one-liner',
  n: spawnCount,
  time: (n) =>
    timeSends(
      n,
      async () => {
        const run = spawnSync(process.env.BENCH_PYTHON || 'python3', ['-c', python])
        if (run.status !== 0) throw new Error(`python3: ${run.stderr}`)
      },
      ['idle']
    ),
})
if (process.env.BENCH_FLOOR) methods.push({ name: 'C sendto (floor)', n: count, time: (n) => timeFloor(n) })

const results = await measureInRounds(methods, Number(process.env.BENCH_ROUNDS))
for (const notifier of notifiers) await notifier.close()
writeFileSync(process.env.BENCH_OUT, JSON.stringify(results))
