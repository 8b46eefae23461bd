// An idle Type=notify service for wakeups.mjs: READY, then one of BENCH_MODE's watchdogs (or none), then
// nothing at all, so that whatever wakes its main thread is the watchdog's doing.
import { createRequire } from 'node:module'

const mode = process.env.BENCH_MODE
const usec = Number(process.env.WATCHDOG_USEC)
setInterval(() => {}, 2 ** 31 - 1) // stays alive without ever waking
if (mode === 'sd-notify') {
  const sdNotify = createRequire(process.env.BENCH_SD_NOTIFY)('sd-notify')
  sdNotify.ready()
  sdNotify.startWatchdogMode(Math.floor(usec / 2000)) // its README's recipe: half the timeout
} else {
  const { createNotifier } = await import('@sdnotify/core')
  const notifier = createNotifier()
  if (mode === 'core') notifier.watchdog.start()
  if (mode === 'histogram') {
    // What core's watchdog did before: perf_hooks' histogram at 20 ms resolution, a ping every half timeout.
    const { monitorEventLoopDelay } = await import('node:perf_hooks')
    globalThis.histogram = monitorEventLoopDelay({ resolution: 20 }) // referenced, as the watchdog kept it
    globalThis.histogram.enable()
    setInterval(() => { void notifier.watchdog.ping() }, Math.floor(usec / 2000)).unref()
    await notifier.watchdog.ping()
  }
  await notifier.ready()
}
