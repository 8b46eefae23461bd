// Idle wake-ups: what a watchdog costs a service that has nothing to do. Each variant runs as a Type=notify
// service with WatchdogSec=30s under the private manager, all at once; after start-up settles, the main
// thread's voluntary context switches (/proc/PID/task/PID/status) over the window count its wake-ups (each
// sleep in epoll_wait is one), and utime + stime of the whole process its CPU time. Start-up settles in
// about 10 s: V8's memory reducer runs once, ~8 s after start (a burst of 5–10 wake-ups in any process;
// measured here with a 1 s sampler), then an idle process without a watchdog does not wake at all.
// Used by run.mjs; alone (as root, under the systemd lock): node benchmarks/wakeups.mjs [--quick]
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

export const WAKEUP_VARIANTS = {
  none: 'idle Node process, READY only (no watchdog)',
  core: '@sdnotify/core watchdog.start(), defaults',
  histogram: 'monitorEventLoopDelay at 20 ms + pings (the previous core watchdog)',
  'sd-notify': 'sd-notify startWatchdogMode(15000) (pings only, no health check)',
}

function sample (pid) {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8')
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields 3… of proc(5)
  return {
    switches: Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1]),
    cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND, // utime + stime
  }
}

/** Runs every variant at once on `sd` (a harness Manager) for windowMs; returns one row per variant. */
export async function measureWakeups (sd, { windowMs = 10_000, settleMs = 10_000, sdNotify } = {}) {
  const modes = Object.keys(WAKEUP_VARIANTS).filter((mode) => mode !== 'sd-notify' || sdNotify)
  const units = []
  for (const mode of modes) {
    const unit = `bench-wakeups-${mode}`
    await sd.writeService(unit, join(here, 'wakeup-service.mjs'), [], {
      asNobody: false,
      service: [
        'Type=notify',
        'WatchdogSec=30s',
        `Environment=BENCH_MODE=${mode}`,
        ...(sdNotify ? [`Environment=BENCH_SD_NOTIFY=${sdNotify}`] : []),
      ],
    })
    units.push({ mode, unit: `${unit}.service` })
  }
  try {
    for (const { unit } of units) {
      const started = await sd.systemctl(['start', unit])
      if (started.code !== 0) throw new Error(`wakeups: ${unit} did not start: ${started.stderr}`)
    }
    await sleep(settleMs)
    for (const u of units) {
      u.pid = Number((await sd.show(u.unit, ['MainPID'])).MainPID)
      u.before = sample(u.pid)
    }
    await sleep(windowMs)
    for (const u of units) u.after = sample(u.pid)
    const rows = []
    for (const u of units) {
      const props = await sd.show(u.unit, ['ActiveState', 'WatchdogTimestampMonotonic', 'NRestarts'])
      const wakeups = u.after.switches - u.before.switches
      rows.push({
        mode: u.mode,
        name: WAKEUP_VARIANTS[u.mode],
        windowMs,
        settleMs,
        wakeups,
        per10s: (wakeups * 10_000) / windowMs,
        cpuPercent: ((u.after.cpuMs - u.before.cpuMs) / windowMs) * 100,
        active: props.ActiveState === 'active' && props.NRestarts === '0',
        pinged: u.mode === 'none' ? null : Number(props.WatchdogTimestampMonotonic) > 0,
      })
    }
    return rows
  } finally {
    await sd.systemctl(['stop', ...units.map((u) => u.unit)])
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { startManager, systemdSkipReason } = await import('@sdnotify/systemd-harness')
  const skip = systemdSkipReason()
  if (skip) {
    console.log(`wakeups: cannot run here: ${skip}`)
    process.exit(0)
  }
  const cache = process.env.SDNOTIFY_BENCH_CACHE ?? '/var/cache/sdnotify/bench'
  const sdNotify = join(cache, 'baselines/package.json')
  const built = existsSync(join(cache, 'baselines/node_modules/sd-notify/build/Release/notify.node'))
  if (!built) console.log('wakeups: sd-notify is not built (pnpm bench builds it): measuring without it')
  const sd = await startManager()
  try {
    const quick = process.argv.includes('--quick')
    const [windowMs, settleMs] = quick ? [3000, 2000] : [10_000, 10_000]
    const rows = await measureWakeups(sd, { windowMs, settleMs, sdNotify: built ? sdNotify : undefined })
    console.log(`systemd ${sd.version}, WatchdogSec=30s, ${windowMs / 1000} s window from ${settleMs / 1000} s`)
    for (const r of rows) {
      const cpu = `${r.cpuPercent.toFixed(2)} % CPU`
      const state = `active: ${r.active}, pinged: ${r.pinged ?? 'n/a'}`
      console.log(`${r.name}: ${r.wakeups} wake-ups (${r.per10s.toFixed(0)} per 10 s), ${cpu}, ${state}`)
    }
  } finally {
    await sd.stop()
  }
}
