// Runs under systemd ≥ 253 with OpenFile=…/notify:notify: latency of the fd transport (pure JS; the
// default there) and, for comparison, of koffi and of the C floor in the same service, in interleaved rounds.
import { writeFileSync } from 'node:fs'
import { createNotifier } from '@sdnotify/core'
import { measureInRounds, timeFloor, timeSends } from './gaps.mjs'

const count = Number(process.env.BENCH_COUNT)
const fd = createNotifier()
const koffi = createNotifier({ transport: 'koffi' })
const results = await measureInRounds(
  [
    { name: 'default', n: count, time: (n) => timeSends(n, (i) => fd.status(`fd ${i}`)) },
    { name: 'koffi', n: count, time: (n) => timeSends(n, (i) => koffi.status(`koffi ${i}`)) },
    { name: 'floor', n: count, time: (n) => timeFloor(n) },
  ],
  Number(process.env.BENCH_ROUNDS)
)
results.default.transport = fd.transport
results.koffi.transport = koffi.transport
results.floor.transport = 'floor'
await fd.close()
await koffi.close()
writeFileSync(process.env.BENCH_OUT, JSON.stringify(results))
