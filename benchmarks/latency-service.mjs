// Runs as a systemd service (as nobody, NotifyAccess=all): sends `count` STATUS messages to the real manager
// with each method, one at a time into an idle socket, and writes the durations (µs) as JSON to $BENCH_OUT.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createNotifier } from '@sdnotify/core'

const count = Number(process.env.BENCH_COUNT)
const spawnCount = Number(process.env.BENCH_SPAWN_COUNT)
const idle = () => new Promise((resolve) => setTimeout(resolve, 1))
const results = {}

async function measure(name, n, send) {
  const us = []
  try {
    await send(-1) // warm-up: the first send loads the transport
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint()
      await send(i)
      us.push(Number(process.hrtime.bigint() - t0) / 1000)
      await idle()
    }
    results[name] = { us }
  } catch (error) {
    results[name] = { error: error.message }
  }
}

for (const transport of ['koffi', 'unix-dgram', 'exec']) {
  const notifier = createNotifier({ transport, onWarning: () => {} })
  await measure(transport, transport === 'exec' ? spawnCount : count, (i) => notifier.status(`${transport} ${i}`))
  await notifier.close()
}
if (process.env.BENCH_SD_NOTIFY) {
  const sdNotify = createRequire(process.env.BENCH_SD_NOTIFY)('sd-notify')
  await measure('sd-notify (npm)', count, async (i) => sdNotify.sendState(`STATUS=sd-notify ${i}\n`))
}
const python = `import socket,os; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'STATUS=python', os.environ['NOTIFY_SOCKET'])`
await measure('python3 one-liner', spawnCount, async () => {
  const run = spawnSync(process.env.BENCH_PYTHON || 'python3', ['-c', python])
  if (run.status !== 0) throw new Error(`python3: ${run.stderr}`)
})
if (process.env.BENCH_FLOOR) {
  const run = spawnSync(process.env.BENCH_FLOOR, ['send', String(count)], { encoding: 'utf8' })
  results['C sendto (floor)'] = run.status === 0 ? { us: run.stdout.trim().split('\n').map((ns) => Number(ns) / 1000) } : { error: run.stderr }
}
writeFileSync(process.env.BENCH_OUT, JSON.stringify(results))
