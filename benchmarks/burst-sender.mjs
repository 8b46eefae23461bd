// Sends `count` STATUS=<seq> messages as fast as the API allows to $NOTIFY_SOCKET (a counting receiver),
// with one method; prints {"sent", "ms", "maxLoopDelayMs", "childProcesses", "error"?}.
import childProcess from 'node:child_process'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { monitorEventLoopDelay } from 'node:perf_hooks'

// Count every child process started from here on: all of Node's asynchronous ways (spawn, exec,
// execFile, fork) go through ChildProcess.prototype.spawn, the synchronous ones are wrapped one by one.
let childProcesses = 0
const spawnAsync = childProcess.ChildProcess.prototype.spawn
childProcess.ChildProcess.prototype.spawn = function (...args) {
  childProcesses++
  return spawnAsync.apply(this, args)
}
for (const name of ['spawnSync', 'execSync', 'execFileSync']) {
  const original = childProcess[name]
  childProcess[name] = function (...args) {
    childProcesses++
    return original.apply(this, args)
  }
}
syncBuiltinESMExports()
// The counter must be able to count: one child of each kind, then back to zero.
childProcess.spawnSync(process.execPath, ['-e', ''])
await new Promise((resolve) => childProcess.execFile(process.execPath, ['-e', ''], resolve))
if (childProcesses !== 2) throw new Error(`burst-sender: the child-process counter saw ${childProcesses} of 2`)
childProcesses = 0
const { createNotifier } = await import('@sdnotify/core')

const [method, countText] = process.argv.slice(2)
const count = Number(countText)
const histogram = monitorEventLoopDelay({ resolution: 1 })
const result = { sent: 0 }
// Ours: every message handed to the notifier at once; it queues and retries while the receiver is full.
async function notifierSender (transport) {
  const n = createNotifier({ transport })
  await Promise.all(Array.from({ length: count }, (_, i) => n.status(String(i)).then(() => result.sent++)))
}
const senders = {
  koffi: () => notifierSender('koffi'),
  'unix-dgram': () => notifierSender('unix-dgram'),
  // unix-dgram used directly, as its README shows: congestion is not retried.
  async 'unix-dgram (raw)' () {
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
  async 'sd-notify (npm)' () {
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
result.childProcesses = childProcesses
console.log(JSON.stringify(result))
process.exit(0)
