// Sends `count` STATUS=<seq> messages as fast as the API allows to $NOTIFY_SOCKET (a counting receiver),
// with one method; prints {"sent", "ms", "maxLoopDelayMs", "error"?}.
import { createRequire } from 'node:module'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createNotifier } from '@sdnotify/core'

const [method, countText] = process.argv.slice(2)
const count = Number(countText)
const histogram = monitorEventLoopDelay({ resolution: 1 })
const result = { sent: 0 }
const senders = {
  async koffi() {
    const n = createNotifier({ transport: 'koffi' })
    await Promise.all(Array.from({ length: count }, (_, i) => n.status(String(i)).then(() => result.sent++)))
  },
  async 'unix-dgram'() {
    const n = createNotifier({ transport: 'unix-dgram' })
    await Promise.all(Array.from({ length: count }, (_, i) => n.status(String(i)).then(() => result.sent++)))
  },
  // unix-dgram used directly, as its README shows: congestion is not retried.
  async 'unix-dgram (raw)'() {
    const require = createRequire(new URL('../packages/core/package.json', import.meta.url))
    const socket = require('unix-dgram').createSocket('unix_dgram')
    socket.on('error', () => {})
    socket.on('congestion', () => {})
    for (let i = 0; i < count; i++) {
      socket.send(Buffer.from(`STATUS=${i}`), 0, String(i).length + 7, process.env.NOTIFY_SOCKET)
      result.sent++
    }
    socket.close()
  },
  async 'sd-notify (npm)'() {
    const sdNotify = createRequire(process.env.BENCH_SD_NOTIFY)('sd-notify')
    for (let i = 0; i < count; i++) {
      sdNotify.sendState(`STATUS=${i}\n`)
      result.sent++
    }
  },
}
histogram.enable()
await new Promise((resolve) => setTimeout(resolve, 20)) // the histogram's first sample only sets its baseline
const t0 = process.hrtime.bigint()
try {
  await senders[method]()
} catch (error) {
  result.error = error.message
}
result.ms = Number(process.hrtime.bigint() - t0) / 1e6
// A synchronous sender blocks the loop for its whole run: the delay is recorded once the loop turns again.
await new Promise((resolve) => setTimeout(resolve, 30))
histogram.disable()
result.maxLoopDelayMs = histogram.max / 1e6
console.log(JSON.stringify(result))
process.exit(0)
