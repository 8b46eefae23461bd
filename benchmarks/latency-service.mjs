// Runs as a systemd service (as nobody, NotifyAccess=all): sends `count` STATUS messages to the real manager
// with each method, one at a time into an idle socket (gaps.mjs), and writes the durations (µs) as JSON to
// $BENCH_OUT.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createNotifier } from '@sdnotify/core'
import { timeSends } from './gaps.mjs'

const count = Number(process.env.BENCH_COUNT)
const spawnCount = Number(process.env.BENCH_SPAWN_COUNT)
const results = {}

// Spawning methods are timed after an idle gap only: a new process per message has no warm state.
async function measure(name, n, send, gapNames) {
  try {
    results[name] = await timeSends(n, send, gapNames)
  } catch (error) {
    results[name] = { error: error.message }
  }
}

for (const transport of ['koffi', 'unix-dgram', 'exec']) {
  const notifier = createNotifier({ transport, onWarning: () => {} })
  const spawning = transport === 'exec'
  await measure(transport, spawning ? spawnCount : count, (i) => notifier.status(`${transport} ${i}`), spawning ? ['idle'] : undefined)
  await notifier.close()
}
if (process.env.BENCH_SD_NOTIFY) {
  const sdNotify = createRequire(process.env.BENCH_SD_NOTIFY)('sd-notify')
  await measure('sd-notify (npm)', count, async (i) => sdNotify.sendState(`STATUS=sd-notify ${i}\n`))
}
const python = `import socket,os; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'STATUS=python', os.environ['NOTIFY_SOCKET'])`
await measure(
  'python3 one-liner',
  spawnCount,
  async () => {
    const run = spawnSync(process.env.BENCH_PYTHON || 'python3', ['-c', python])
    if (run.status !== 0) throw new Error(`python3: ${run.stderr}`)
  },
  ['idle'],
)
if (process.env.BENCH_FLOOR) {
  const floor = (gap) => {
    const run = spawnSync(process.env.BENCH_FLOOR, ['send', String(count), gap], { encoding: 'utf8' })
    if (run.status !== 0) throw new Error(`floor: ${run.stderr}`)
    return run.stdout.trim().split('\n').map((ns) => Number(ns) / 1000)
  }
  try {
    const us = floor('idle')
    results['C sendto (floor)'] = { us, loopUs: us, warmUs: floor('warm') }
  } catch (error) {
    results['C sendto (floor)'] = { error: error.message }
  }
}
writeFileSync(process.env.BENCH_OUT, JSON.stringify(results))
