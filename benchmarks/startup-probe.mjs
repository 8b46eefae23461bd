// One measurement in a fresh process: import time and RSS added by @sdnotify/core, optionally with the
// first send through a transport. Prints JSON.
const mode = process.argv[2] // 'unset' | transport name
await import('./empty.mjs') // start Node's ES module loader first: its own cost is not ours
const rssBefore = process.memoryUsage().rss
const t0 = process.hrtime.bigint()
const { createNotifier } = await import('@sdnotify/core')
const importMs = Number(process.hrtime.bigint() - t0) / 1e6
let firstSendMs = null
const n = createNotifier(mode === 'unset' ? {} : { transport: mode })
const t1 = process.hrtime.bigint()
await n.ready('probe')
firstSendMs = Number(process.hrtime.bigint() - t1) / 1e6
const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so)).length
console.log(JSON.stringify({ importMs, firstSendMs, rssAddedMb: (process.memoryUsage().rss - rssBefore) / 1048576, native }))
