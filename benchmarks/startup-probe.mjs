// One measurement in a fresh process: import time and RSS added by @sdnotify/core, optionally with the
// first send through a transport. Prints JSON.
//
// Node's ES module loader is itself cold in a fresh process: its first bare-specifier import costs
// ~3 ms whatever the package. An application has imported packages (its framework) before ours, so
// the loader is warmed with a one-line package first, a second one-line package is timed as the
// reference (what any package costs the loader), then @sdnotify/core.
const mode = process.argv[2] // 'unset' | transport name
const elapsedMs = (t0) => Number(process.hrtime.bigint() - t0) / 1e6
await import('one-line-package-a')
let t0 = process.hrtime.bigint()
await import('one-line-package-b')
const referenceMs = elapsedMs(t0)
const rssBefore = process.memoryUsage().rss
t0 = process.hrtime.bigint()
const { createNotifier } = await import('@sdnotify/core')
const importMs = elapsedMs(t0)
const n = createNotifier(mode === 'unset' ? {} : { transport: mode })
t0 = process.hrtime.bigint()
await n.ready('probe')
const firstSendMs = elapsedMs(t0)
const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so)).length
const rssAddedMb = (process.memoryUsage().rss - rssBefore) / 1048576
console.log(JSON.stringify({ importMs, referenceMs, firstSendMs, rssAddedMb, native }))
