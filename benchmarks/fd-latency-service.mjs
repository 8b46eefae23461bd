// Runs under systemd ≥ 253 with OpenFile=…/notify:notify: latency of the fd transport (pure JS).
import { writeFileSync } from 'node:fs'
import { createNotifier } from '@sdnotify/core'

const count = Number(process.env.BENCH_COUNT)
const notifier = createNotifier()
const us = []
await notifier.status('warm-up')
for (let i = 0; i < count; i++) {
  const t0 = process.hrtime.bigint()
  await notifier.status(`fd ${i}`)
  us.push(Number(process.hrtime.bigint() - t0) / 1000)
  await new Promise((resolve) => setTimeout(resolve, 1))
}
writeFileSync(process.env.BENCH_OUT, JSON.stringify({ transport: notifier.transport, us }))
