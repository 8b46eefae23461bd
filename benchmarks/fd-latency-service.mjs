// Runs under systemd ≥ 253 with OpenFile=…/notify:notify: latency of the fd transport (pure JS; the
// default there) and, for comparison, of koffi in the same service.
import { writeFileSync } from 'node:fs'
import { createNotifier } from '@sdnotify/core'
import { timeSends } from './gaps.mjs'

const count = Number(process.env.BENCH_COUNT)
const results = {}
for (const transport of [undefined, 'koffi']) {
  const notifier = createNotifier(transport ? { transport } : {})
  try {
    results[transport ?? 'default'] = { transport: notifier.transport, ...(await timeSends(count, (i) => notifier.status(`${transport ?? 'fd'} ${i}`))) }
  } catch (error) {
    results[transport ?? 'default'] = { error: error.message }
  }
  await notifier.close()
}
writeFileSync(process.env.BENCH_OUT, JSON.stringify(results))
