// pnpm soak [--quick]: fault injection against a private systemd manager (the test harness's), with a service
// (service.mjs) that uses @sdnotify/core's public API as an application would. Full mode rewrites RELIABILITY.md
// and reliability/results.json; --quick (CI, run by `pnpm test`) writes to .soak-quick/. Every expectation is
// printed as a TAP line, with tap's summary line last; the exit code is 1 when one failed.
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  DEBIAN_ROOT,
  debianRootSkipReason,
  startManager,
  systemdSkipReason,
  testPort,
} from '@sdnotify/systemd-harness'
import { renderReport } from './report.mjs'

const quick = process.argv.includes('--quick')
const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..')
const serviceScript = join(here, 'service.mjs')
const command = quick ? 'pnpm soak --quick' : 'pnpm soak'
// rounds: of 5 re-executions and 5 reloads; freezeMs, sendTimeoutMs: the long freeze; outageMs: the socket renamed
// away (longer than the service's sendTimeoutMs of 1 s); burst, storm: calls at once (frozen manager, running
// manager); healthyMs, stalls: the watchdog soak.
const N = quick
  ? { rounds: 1, burst: 1000, freezeMs: 10_000, sendTimeoutMs: 2000, outageMs: 2000, storm: 5000 }
  : { rounds: 4, burst: 2000, freezeMs: 60_000, sendTimeoutMs: 5000, outageMs: 5000, storm: 20_000 }
Object.assign(N, quick ? { healthyMs: 40_000, stalls: 5 } : { healthyMs: 600_000, stalls: 20 })
const started = Date.now()
const progress = (message) => console.error(`[soak ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---- TAP output: one line per expectation, tap's summary line last (scripts/test.mjs adds it up) ----
const totals = { total: 0, pass: 0, fail: 0, skip: 0 }
let current
console.log('TAP version 14')
function check (name, ok, detail = '') {
  const id = ++totals.total
  if (ok) totals.pass++
  else totals.fail++
  current.checks.push({ name, ok: Boolean(ok), detail: String(detail) })
  const where = `${current.id} (systemd ${current.systemd})`
  console.log(`${ok ? 'ok' : 'not ok'} ${id} - ${where}: ${name}${detail === '' ? '' : ` (${detail})`}`)
}
function skipAll (what, reason) {
  totals.skip++
  console.log(`ok ${++totals.total} - ${what} # SKIP ${reason}`)
}
function finishTap () {
  console.log(`1..${totals.total}`)
  console.log(`# { total: ${totals.total}, pass: ${totals.pass}, fail: ${totals.fail}, skip: ${totals.skip}, todo: 0 }`)
}

const skip = systemdSkipReason()
if (skip) {
  console.log(`# pnpm soak cannot run here: ${skip}. It injects faults into a private systemd manager (root, Linux).`)
  skipAll('reliability soak', skip)
  finishTap()
  process.exit(quick ? 0 : 1) // --quick is part of the test command: skip with the reason elsewhere
}

// ---- faults in force, released on every way out (finally blocks, exit, signals) ----
const frozen = new Set()
const renamed = []
const hogs = new Set()
const taps = new Set()
const scratches = new Set() // the managers' scratch folders, which the harness removes only in stop()
function releaseFaults () {
  for (const pid of frozen) {
    try {
      process.kill(pid, 'SIGCONT')
    } catch {
      /* gone */
    }
  }
  frozen.clear()
  while (renamed.length > 0) {
    const [from, to] = renamed.pop()
    try {
      renameSync(to, from)
    } catch {
      /* the manager is gone */
    }
  }
  for (const hog of hogs) hog.kill('SIGKILL')
  hogs.clear()
}
// The harness's own exit hook then kills the managers and removes their cgroups.
process.on('exit', () => {
  releaseFaults()
  for (const tap of taps) tap.kill('SIGKILL')
  for (const dir of scratches) rmSync(dir, { recursive: true, force: true })
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    progress(`${signal}: releasing the faults and stopping the managers`)
    process.exit(130)
  })
}
function freeze (sd) {
  process.kill(sd.pid, 'SIGSTOP')
  frozen.add(sd.pid)
}
function thaw (sd) {
  process.kill(sd.pid, 'SIGCONT')
  frozen.delete(sd.pid)
}

// ---- the manager, and what it logs ----
/**
 * Starts a manager and makes its log readable: a pseudo-terminal (console-tap.mjs) is bind-mounted over
 * /dev/console in the manager's mount namespace and the manager re-executed, so that it reopens it. At debug
 * level systemd logs every notification it accepts ("Got notification message from PID …"): the manager's side
 * of the account.
 */
async function startObservedManager (options) {
  const sd = await startManager(options)
  scratches.add(sd.scratch)
  const consoleLog = join(sd.scratch, 'manager-console.log')
  // --pdeathsig: the tap blocks reading its terminal; it must not outlive this process.
  const tapArgs = ['--pdeathsig', 'KILL', process.execPath, join(here, 'console-tap.mjs'), consoleLog]
  const tap = spawn('/usr/bin/setpriv', tapArgs, { stdio: ['ignore', 'pipe', 'inherit'] })
  taps.add(tap)
  const ctx = {
    sd,
    consoleLog,
    services: 0,
    async stop (keepAs) {
      try {
        if (keepAs) copyFileSync(consoleLog, keepAs)
      } catch {
        /* nothing logged */
      }
      releaseFaults()
      await sd.stop()
      scratches.delete(sd.scratch)
      tap.kill('SIGKILL')
      taps.delete(tap)
    },
  }
  try {
    const pts = await new Promise((resolve, reject) => {
      tap.stdout.once('data', (chunk) => resolve(String(chunk).trim()))
      tap.once('exit', (code) => reject(new Error(`console-tap exited with ${code}`)))
    })
    execFileSync('/usr/bin/nsenter', ['-t', String(sd.pid), '-m', '-r', '--', 'mount', '--bind', pts, '/dev/console'])
    await systemctl(sd, ['log-level', 'debug'])
    await systemctl(sd, ['daemon-reexec'])
    await consoleBarrier(ctx)
    return ctx
  } catch (error) {
    await ctx.stop()
    throw error
  }
}

async function systemctl (sd, args) {
  const result = await sd.systemctl(args)
  if (result.code !== 0) throw new Error(`systemctl ${args.join(' ')}: ${result.stderr.trim()}`)
  return result
}

function consoleLines (ctx) {
  if (!existsSync(ctx.consoleLog)) return []
  return readFileSync(ctx.consoleLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const space = line.indexOf(' ')
      return { t: Number(line.slice(0, space)), text: line.slice(space + 1).replace(/\r+$/, '') }
    })
}

/**
 * Waits until the manager has logged everything before this point: it logs "Setting log level" for the D-Bus
 * call, and it reads the notify socket at a higher priority than D-Bus (sd-event priorities, manager.c).
 */
async function consoleBarrier (ctx) {
  const marks = () => consoleLines(ctx).filter((l) => l.text === 'Setting log level to debug.').length
  const before = marks()
  await systemctl(ctx.sd, ['log-level', 'debug'])
  const deadline = Date.now() + 10_000
  while (marks() <= before && Date.now() < deadline) await sleep(20)
}

/**
 * Notifications the manager accepted for `unit` (from `since`, a Date.now() value). systemd 252 logs
 * "…from PID 12 (READY=1, STATUS=x)", 257 "…from PID 12: READY=1, STATUS=x".
 */
function notificationsFor (ctx, unit, since = 0) {
  const prefix = `^${unit.replace('.', '\\.')}: Got notification message from PID`
  const pattern = new RegExp(`${prefix} (\\d+)(?: \\((.*)\\)|: (.*))$`)
  const out = []
  for (const line of consoleLines(ctx)) {
    if (line.t < since) continue
    const match = pattern.exec(line.text)
    if (!match) continue
    const tags = match[2] ?? match[3]
    const status = /(?:^|, )STATUS=(.*?)(?:, [A-Z_]+=|$)/.exec(tags)?.[1]
    const seq = /(?:^|, )X_SEQ=(\d+)(?:,|$)/.exec(tags)?.[1]
    out.push({
      t: line.t,
      status,
      seq: seq === undefined ? undefined : Number(seq),
      watchdog: /(?:^|, )WATCHDOG=1(?:,|$)/.test(tags),
    })
  }
  return out
}

/** The manager's lines about `unit` containing `text`, from `since`. */
function logLines (ctx, unit, text, since = 0) {
  return consoleLines(ctx).filter((l) => l.t >= since && l.text.startsWith(`${unit}: `) && l.text.includes(text))
}

/**
 * The service's account of a series against the manager's. `lost`: combined messages (STATUS with X_SEQ, which
 * the notifier must never drop) that resolved true but never reached the manager. `superseded`: status-only calls
 * that resolved true but whose STATUS the manager never saw (a newer status replaced them in the queue).
 */
function compare (stats, notes) {
  const pattern = new RegExp(`^${stats.prefix} (\\d+)$`)
  const seqs = notes.map((n) => pattern.exec(n.status ?? '')?.[1]).filter(Boolean).map(Number)
  let increasing = true
  for (let i = 1; i < seqs.length; i++) if (seqs[i] <= seqs[i - 1]) increasing = false
  const arrived = new Set(seqs)
  const tagged = new Set(notes.map((n) => n.seq).filter((seq) => seq !== undefined))
  const combined = (seq) => stats.mixed && seq % 2 === 0
  return {
    seqs,
    increasing,
    lost: stats.delivered.filter((seq) => combined(seq) && !tagged.has(seq)).length,
    superseded: stats.delivered.filter((seq) => !combined(seq) && !arrived.has(seq)).length,
    combinedSent: stats.mixed ? Math.floor(stats.submitted / 2) : 0,
    lastArrived: arrived.has(stats.last),
  }
}
function accountText (a) {
  const combined = a.combinedSent ? `combined lost ${a.lost} of ${a.combinedSent}; ` : ''
  const accepted = `${a.seqs.length} statuses accepted, in order: ${a.increasing}`
  return `${accepted}; ${combined}status-only superseded ${a.superseded}`
}

// ---- the service ----
function call (port, path, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const request = httpGet({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => {
        if (response.statusCode === 200) resolve(JSON.parse(body))
        else reject(new Error(`${path}: HTTP ${response.statusCode} ${body}`))
      })
    })
    request.on('timeout', () => request.destroy(new Error(`${path}: no answer in ${timeoutMs} ms`)))
    request.on('error', reject)
  })
}

async function waitFor (predicate, timeoutMs, stepMs = 100) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await predicate()
    if (value || Date.now() > deadline) return value
    await sleep(stepMs)
  }
}

const PROPS = ['ActiveState', 'SubState', 'Result', 'NRestarts', 'StatusText', 'MainPID']

/** A Type=notify unit running service.mjs as nobody; started, and answering on its port. */
async function startService (ctx, prefix, env, lines, unitLines = []) {
  const { sd } = ctx
  const port = testPort()
  const name = `${prefix}${++ctx.services}`
  const log = `${sd.scratch}/${name}.log`
  const vars = Object.entries({ SOAK_LOG: log, PORT: String(port), ...env }).map(([k, v]) => `"${k}=${v}"`)
  await sd.writeService(name, serviceScript, [], {
    unit: unitLines,
    service: [
      'Type=notify',
      `Environment=${vars.join(' ')}`,
      'TimeoutStartSec=30s',
      `StandardError=append:${sd.scratch}/${name}.err`,
      ...lines,
    ],
  })
  const unit = `${name}.service`
  await systemctl(sd, ['start', unit])
  const report = await call(port, '/report', 10_000)
  return { unit, port, log, name, report }
}

/** The service's own lifecycle log (every process of the unit appends to it). */
function serviceEvents (log) {
  try {
    return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line))
  } catch {
    return []
  }
}

/** Until the unit was restarted once more than `before` and runs again with a new main process. */
function restartedAfter (ctx, unit, before, timeoutMs = 20_000) {
  return waitFor(async () => {
    const p = await ctx.sd.show(unit, PROPS)
    const again = Number(p.NRestarts) > Number(before.NRestarts) && p.ActiveState === 'active'
    return again && p.MainPID !== before.MainPID ? p : undefined
  }, timeoutMs)
}

const failuresOf = (outcomes) => Object.entries(outcomes).reduce((sum, [k, n]) => (k === 'true' ? sum : sum + n), 0)
const fmt = (n, digits = 1) => (typeof n === 'number' ? n.toFixed(digits) : String(n))
const isErrno = (name) => /^E[A-Z0-9]+$/.test(name)
function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

// Checks shared by the scenarios.
function checkSteady (props, pid0) {
  const same = pid0 === undefined || props.MainPID === String(pid0)
  const steady = props.NRestarts === '0' && props.ActiveState === 'active' && same
  const moved = same ? '' : `, MainPID ${props.MainPID} (was ${pid0})`
  const detail = `${props.ActiveState}, NRestarts=${props.NRestarts}${moved}`
  check('0 restarts, unit active (same main process)', steady, detail)
}
function checkNoProblems (report) {
  const clean = report.unhandled.length === 0 && report.errors.length === 0
  const errors = `${report.errors.length} background errors ${report.errors.join(' ')}`
  const detail = `${report.unhandled.length} unhandled, ${errors}`
  check('no unhandled rejection, no background error', clean, detail.trim())
}
function checkTransport (report, transport) {
  check(`transport is ${transport}`, report.transport === transport, report.transport)
}

// ---- the scenarios ----
const results = { quick, counts: N, command, date: new Date().toISOString().slice(0, 10), scenarios: [], machine: {} }

async function scenario (meta, ctx, body) {
  current = { ...meta, systemd: ctx.sd.version, checks: [], observed: [] }
  results.scenarios.push(current)
  const t0 = Date.now()
  progress(`${meta.id}: ${meta.title} (systemd ${ctx.sd.version}${meta.transport ? `, ${meta.transport}` : ''})`)
  const units = []
  try {
    await body(units)
  } catch (error) {
    check('ran to completion', false, String(error?.message ?? error).split('\n')[0])
    progress(error?.stack ?? error)
  } finally {
    releaseFaults()
    for (const unit of units) await ctx.sd.systemctl(['stop', unit]).catch(() => undefined)
    current.seconds = (Date.now() - t0) / 1000
  }
}
const observe = (what, value) => current.observed.push([what, String(value)])
const MIXED = 'alternately `status()` and `send({ status, extra: { X_SEQ: N } })`'
const transportEnv = (transport) => ({ SOAK_TRANSPORT: transport === 'fd' ? 'auto' : transport })

/** 1. The manager re-executes and reloads while the service sends numbered statuses and watchdog pings. */
async function reexecScenario (ctx, { transport, extraLines = [] }) {
  const meta = {
    id: 'reexec',
    title: 'manager re-executes and reloads under traffic',
    transport,
    injected:
      '`systemctl --user daemon-reexec` ×5 back to back, then `daemon-reload` ×5, while the service sends ' +
      `\`seq N\` every 20 ms, ${MIXED} (WatchdogSec=4s: automatic pings too)`,
    often: `${N.rounds} round(s): ${N.rounds * 5} re-executions and ${N.rounds * 5} reloads`,
  }
  await scenario(meta, ctx, async (units) => {
    const lines = ['WatchdogSec=4s', 'Restart=on-failure', ...extraLines]
    const svc = await startService(ctx, 'reexec', transportEnv(transport), lines)
    units.push(svc.unit)
    await call(svc.port, '/ticker/start?everyMs=20&prefix=seq&mixed')
    await sleep(300)
    const reexecMs = []
    const reloadMs = []
    for (let round = 0; round < N.rounds; round++) {
      for (const [verb, times] of [['daemon-reexec', reexecMs], ['daemon-reload', reloadMs]]) {
        for (let i = 0; i < 5; i++) {
          const t = Date.now()
          await systemctl(ctx.sd, [verb])
          times.push(Date.now() - t)
        }
      }
    }
    await sleep(500)
    const stats = await call(svc.port, '/ticker/stop')
    const report = await call(svc.port, '/report')
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const account = compare(stats, notificationsFor(ctx, svc.unit))
    const failures = failuresOf(stats.outcomes)
    observe('transport', report.transport)
    observe('re-execution time, median / max', `${median(reexecMs)} / ${Math.max(...reexecMs)} ms`)
    observe('reload time, median / max', `${median(reloadMs)} / ${Math.max(...reloadMs)} ms`)
    observe('calls, and how they settled', `${stats.submitted}: ${JSON.stringify(stats.outcomes)}`)
    observe('what the manager accepted', accountText(account))
    observe('longest a call took', `${fmt(stats.maxSettleMs)} ms`)
    observe('StatusText at the end; NRestarts', `${props.StatusText}; ${props.NRestarts}`)
    checkTransport(report, transport)
    checkSteady(props, svc.report.pid)
    check('the service saw no failure', failures === 0 && stats.unsettled === 0, JSON.stringify(stats.outcomes))
    check('the last status is what systemctl shows', props.StatusText === `seq ${stats.last}`, props.StatusText)
    check(
      'nothing lost: every combined message reached the manager; statuses in order, the last one too',
      account.lost === 0 && account.increasing && account.lastArrived,
      accountText(account)
    )
    checkNoProblems(report)
  })
}

/** 2. The manager is frozen for 2 s (less than half of WatchdogSec=5) while a burst is sent. */
async function freezeBurstScenario (ctx, { transport }) {
  const freezeMs = 2000
  const meta = {
    id: 'freeze-burst',
    title: 'manager frozen during a burst',
    transport,
    injected:
      `SIGSTOP to the manager for ${freezeMs} ms (WatchdogSec=5s) while the service makes ${N.burst} calls at once, ` +
      `\`burst N\` ${MIXED}; then SIGCONT`,
    often: 'once',
  }
  await scenario(meta, ctx, async (units) => {
    const lines = ['WatchdogSec=5s', 'Restart=on-failure']
    const svc = await startService(ctx, 'burst', { SOAK_TRANSPORT: transport }, lines)
    units.push(svc.unit)
    // A fresh ping first, so that the freeze plus the backlog stays inside the watchdog timeout (FACTS.md).
    await call(svc.port, '/ping')
    freeze(ctx.sd)
    const frozenAt = Date.now()
    const burst = call(svc.port, `/burst?count=${N.burst}&prefix=burst&mixed`)
    await sleep(frozenAt + freezeMs - Date.now())
    const thawedAt = Date.now() // before SIGCONT: the manager may log within the millisecond
    thaw(ctx.sd)
    const stats = await burst
    const report = await call(svc.port, '/report')
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const notes = notificationsFor(ctx, svc.unit, frozenAt).filter((n) => n.status?.startsWith('burst '))
    const account = compare(stats, notes)
    const arrival = notes.length ? `${notes[0].t - thawedAt} / ${notes.at(-1).t - thawedAt} ms` : 'none'
    observe('transport', report.transport)
    observe('calls, and how they settled', `${stats.submitted}: ${JSON.stringify(stats.outcomes)}`)
    observe('max event-loop delay during the burst (perf_hooks, 1 ms resolution)', `${fmt(stats.maxLoopDelayMs)} ms`)
    observe('time to make the calls (synchronous)', `${fmt(stats.submitMs)} ms`)
    observe('burst settled after', `${fmt(stats.ms, 0)} ms (freeze ${freezeMs} ms)`)
    observe('what the manager accepted', accountText(account))
    observe('first / last of them accepted, after SIGCONT', arrival)
    checkTransport(report, transport)
    check('every call resolved true', (stats.outcomes.true ?? 0) === N.burst, JSON.stringify(stats.outcomes))
    check(
      'every combined message reached the manager after SIGCONT; statuses in order, the last one too',
      account.lost === 0 && account.increasing && account.lastArrived && notes.every((n) => n.t >= thawedAt),
      accountText(account)
    )
    check('StatusText is the last of the burst', props.StatusText === `burst ${N.burst}`, props.StatusText)
    check(
      'the event loop never waited on the frozen manager (max delay < 250 ms)',
      stats.maxLoopDelayMs < 250,
      `${fmt(stats.maxLoopDelayMs)} ms`
    )
    checkSteady(props, svc.report.pid)
    checkNoProblems(report)
  })
}

/** 3. The manager stays frozen (no watchdog) while the application calls status() every 10 ms. */
async function longFreezeScenario (ctx, { transport, extraLines = [] }) {
  const everyMs = 10
  const slackMs = 1000
  const meta = {
    id: 'long-freeze',
    title: 'manager frozen for a long time',
    transport,
    injected:
      `SIGSTOP to the manager for ${N.freezeMs / 1000} s (no WatchdogSec=) while the application calls \`status()\` ` +
      `every ${everyMs} ms, with sendTimeoutMs=${N.sendTimeoutMs}; then SIGCONT and 2 s more`,
    often: 'once',
  }
  await scenario(meta, ctx, async (units) => {
    const env = { ...transportEnv(transport), SOAK_SEND_TIMEOUT_MS: String(N.sendTimeoutMs) }
    const svc = await startService(ctx, 'frozen', env, ['Restart=on-failure', ...extraLines])
    units.push(svc.unit)
    await call(svc.port, `/ticker/start?everyMs=${everyMs}&prefix=seq`)
    await sleep(1000)
    freeze(ctx.sd)
    const frozenAt = Date.now()
    await sleep(N.freezeMs - 1000)
    const frozenMemory = await call(svc.port, '/memory') // heap after a full GC, near the end of the freeze
    await sleep(frozenAt + N.freezeMs - Date.now())
    const thawedAt = Date.now() // before SIGCONT: the manager may log within the millisecond
    thaw(ctx.sd)
    const mark = await call(svc.port, '/ticker/mark')
    await sleep(2000)
    const stats = await call(svc.port, `/ticker/stop?settleMs=${Math.max(30_000, N.freezeMs)}`)
    const report = await call(svc.port, '/report')
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const notes = notificationsFor(ctx, svc.unit)
    const account = compare(stats, notes)
    const firstAfter = notes.find((n) => Number(/^seq (\d+)$/.exec(n.status ?? '')?.[1]) > mark.seq)
    const rejections = Object.fromEntries(Object.entries(stats.outcomes).filter(([k]) => k.startsWith('rejected')))
    const onlyTimeouts = Object.keys(rejections).every((k) => k === 'rejected ERR_SDNOTIFY_TIMEOUT')
    const heapGrowth = frozenMemory.heapMb - stats.memoryBefore.heapMb
    const backlogBound = Math.ceil((N.sendTimeoutMs + slackMs) / everyMs)
    const settledAfter = stats.firstAfter?.settledMs
    const settledText = settledAfter === undefined ? 'never' : `${fmt(settledAfter, 0)} ms`
    const resumed = `${settledText} / ${firstAfter ? `${firstAfter.t - thawedAt} ms` : 'never'}`
    const heaps = [stats.memoryBefore.heapMb, frozenMemory.heapMb, stats.memoryAfter.heapMb].map((mb) => fmt(mb))
    const rss = [stats.memoryBefore.rssMb, stats.memoryPeak.peakRssMb, stats.memoryAfter.rssMb].map((mb) => fmt(mb))
    observe('transport', report.transport)
    observe('calls, and how they settled', `${stats.submitted}: ${JSON.stringify(stats.outcomes)}`)
    observe('errno of the rejections', JSON.stringify(stats.rejectErrnos))
    observe(
      'longest a call stayed unsettled / longest until a rejection',
      `${fmt(stats.maxOldestPendingMs, 0)} / ${fmt(stats.maxRejectMs, 0)} ms (sendTimeoutMs ${N.sendTimeoutMs})`
    )
    observe('most calls unsettled at once', stats.maxPending)
    observe('heap after GC: before / near the end of the freeze / after', `${heaps.join(' / ')} MB`)
    observe('RSS: before / peak / after', `${rss.join(' / ')} MB`)
    observe('max event-loop delay (service)', `${fmt(stats.maxLoopDelayMs)} ms`)
    observe('what the manager accepted', accountText(account))
    observe('first call made after SIGCONT: settled / reached the manager', resumed)
    checkTransport(report, transport)
    check('no unhandled rejection', report.unhandled.length === 0, report.unhandled.length)
    check('every call settled', stats.unsettled === 0, `${stats.unsettled} still pending`)
    check(
      'rejections are ERR_SDNOTIFY_TIMEOUT and carry the errno',
      onlyTimeouts && Object.keys(stats.rejectErrnos).every(isErrno),
      `${JSON.stringify(rejections)}, errno ${JSON.stringify(stats.rejectErrnos)}`
    )
    check(
      `no call waited past sendTimeoutMs (+${slackMs} ms)`,
      Math.max(stats.maxOldestPendingMs, stats.maxSettleMs) <= N.sendTimeoutMs + slackMs,
      `oldest unsettled ${fmt(stats.maxOldestPendingMs, 0)} ms, slowest to settle ${fmt(stats.maxSettleMs, 0)} ms`
    )
    const bounded = stats.maxPending <= backlogBound
    check(`backlog bounded (≤ ${backlogBound} calls unsettled at once)`, bounded, stats.maxPending)
    check('heap bounded (< 16 MB growth after GC)', heapGrowth < 16, `${fmt(heapGrowth)} MB`)
    check(
      'sending resumed after SIGCONT: the last status arrived and is shown',
      props.StatusText === `seq ${stats.last}` && account.lastArrived,
      `"${props.StatusText}", last "seq ${stats.last}"`
    )
    check('what arrived arrived in order', account.increasing, accountText(account))
    checkSteady(props, svc.report.pid)
  })
}

/** 4a. The notify socket is renamed away and back while the service keeps sending. */
async function socketGoneScenario (ctx, { transport, extraLines = [] }) {
  const meta = {
    id: 'socket-gone',
    title: 'notify socket disappears and comes back',
    transport,
    injected:
      `the manager's notify socket renamed away for ${N.outageMs} ms and back, while the service ` +
      `(sendTimeoutMs=1000) sends \`seq N\` every 10 ms, ${MIXED}`,
    often: 'once',
  }
  await scenario(meta, ctx, async (units) => {
    const env = { ...transportEnv(transport), SOAK_SEND_TIMEOUT_MS: '1000' }
    const svc = await startService(ctx, 'gone', env, ['Restart=on-failure', ...extraLines])
    units.push(svc.unit)
    await call(svc.port, '/ticker/start?everyMs=10&prefix=seq&mixed')
    await sleep(500)
    const socket = ctx.sd.path(ctx.sd.notifySocket)
    renameSync(socket, `${socket}.away`)
    renamed.push([socket, `${socket}.away`])
    await sleep(N.outageMs)
    renameSync(`${socket}.away`, socket)
    renamed.pop()
    await sleep(1000)
    const stats = await call(svc.port, '/ticker/stop')
    const report = await call(svc.port, '/report')
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const account = compare(stats, notificationsFor(ctx, svc.unit))
    const failures = failuresOf(stats.outcomes)
    observe('transport', report.transport)
    observe('calls, and how they settled', `${stats.submitted}: ${JSON.stringify(stats.outcomes)}`)
    observe('errno of the failures', JSON.stringify(stats.rejectErrnos))
    observe('longest a call took', `${fmt(stats.maxSettleMs, 0)} ms`)
    observe('what the manager accepted', accountText(account))
    observe('StatusText at the end', props.StatusText)
    checkTransport(report, transport)
    check(
      'every call settled; each failure was a rejection naming the errno',
      stats.unsettled === 0 && Object.keys(stats.rejectErrnos).every(isErrno),
      `${failures} failed: ${JSON.stringify(stats.rejectErrnos)}`
    )
    check(
      'nothing lost: every combined message reported sent reached the manager; statuses in order',
      account.lost === 0 && account.increasing,
      accountText(account)
    )
    check('sending resumed: the last status is shown', props.StatusText === `seq ${stats.last}`, props.StatusText)
    checkSteady(props, svc.report.pid)
    checkNoProblems(report)
  })
}

/** 4b. A burst of thousands into a live manager: EAGAIN all along (the socket queue holds max_dgram_qlen). */
async function stormScenario (ctx, { transport }) {
  const qlen = readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8').trim()
  const meta = {
    id: 'storm',
    title: 'EAGAIN storm',
    transport,
    injected:
      `${N.storm} calls at once into a running manager, ${MIXED} (net.unix.max_dgram_qlen=${qlen}: the socket queue ` +
      'is full almost at once, and further sends meet EAGAIN until the manager catches up)',
    often: 'once',
  }
  await scenario(meta, ctx, async (units) => {
    const svc = await startService(ctx, 'storm', { SOAK_TRANSPORT: transport }, ['Restart=on-failure'])
    units.push(svc.unit)
    const since = Date.now()
    const stats = await call(svc.port, `/burst?count=${N.storm}&prefix=storm&mixed`, 600_000)
    const report = await call(svc.port, '/report')
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const account = compare(stats, notificationsFor(ctx, svc.unit, since))
    observe('transport', report.transport)
    observe('calls, and how they settled', `${stats.submitted}: ${JSON.stringify(stats.outcomes)}`)
    observe('wall time, rate', `${fmt(stats.ms, 0)} ms, ${fmt(N.storm / (stats.ms / 1000), 0)} calls/s`)
    observe(
      'max event-loop delay (service, 1 ms resolution); time to make the calls',
      `${fmt(stats.maxLoopDelayMs)} ms; ${fmt(stats.submitMs)} ms`
    )
    observe('what the manager accepted', accountText(account))
    checkTransport(report, transport)
    check('every call resolved true', (stats.outcomes.true ?? 0) === N.storm, JSON.stringify(stats.outcomes))
    check(
      'every combined message arrived; statuses in order, the last one too (and shown)',
      account.lost === 0 && account.increasing && account.lastArrived && props.StatusText === `storm ${N.storm}`,
      `${accountText(account)}; StatusText "${props.StatusText}"`
    )
    checkSteady(props, svc.report.pid)
    checkNoProblems(report)
  })
}

/** 4c. A health check that never settles, then one that throws synchronously: each must get a watchdog restart. */
async function healthScenario (ctx) {
  const meta = {
    id: 'health',
    title: 'health check hangs, health check throws',
    transport: 'koffi',
    injected:
      'WatchdogSec=1s, Restart=on-watchdog: the health check switched to a promise that never settles; after the ' +
      'restart, to one that throws synchronously',
    often: 'once each',
  }
  await scenario(meta, ctx, async (units) => {
    const lines = ['WatchdogSec=1s', 'Restart=on-watchdog', 'RestartSec=200ms']
    const svc = await startService(ctx, 'health', {}, lines, ['StartLimitIntervalSec=0'])
    units.push(svc.unit)
    const since = Date.now()
    const outcomes = []
    for (const mode of ['hang', 'throw']) {
      const before = await ctx.sd.show(svc.unit, PROPS)
      await call(svc.port, `/health?mode=${mode}`)
      const t = Date.now()
      const after = await restartedAfter(ctx, svc.unit, before)
      outcomes.push({ mode, restarted: Boolean(after), ms: Date.now() - t })
      if (after) await waitFor(() => call(svc.port, '/report', 2000).catch(() => undefined), 10_000)
    }
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const timeouts = logLines(ctx, svc.unit, 'Watchdog timeout', since).length
    const watchdogResults = logLines(ctx, svc.unit, "Failed with result 'watchdog'", since).length
    const events = serviceEvents(svc.log)
    const reasons = events.filter((e) => e.event === 'unhealthy').map((e) => e.reason)
    const unhandled = events.filter((e) => e.event === 'unhandled').length
    const took = outcomes.map((o) => `${o.mode}: ${o.restarted ? `${o.ms} ms` : 'no restart'}`)
    observe('unhealthy reasons the watchdog reported', reasons.join('; '))
    observe('from the switch to the restarted unit being active', took.join(', '))
    const counts = `${timeouts}, ${watchdogResults}, ${props.NRestarts}`
    observe("manager: 'Watchdog timeout', Result=watchdog, NRestarts", counts)
    check(
      'a health check that never settles led to a watchdog restart',
      outcomes[0].restarted && reasons.some((r) => /timed out/.test(r)),
      reasons[0] ?? 'no unhealthy report'
    )
    check(
      'a health check that throws synchronously led to a watchdog restart',
      outcomes[1].restarted && reasons.some((r) => /threw synchronously/.test(r)),
      reasons[1] ?? 'no unhealthy report'
    )
    check(
      'both were Result=watchdog (2 restarts, 2 watchdog timeouts)',
      props.NRestarts === '2' && watchdogResults === 2 && timeouts === 2,
      `NRestarts=${props.NRestarts}, ${watchdogResults} Result=watchdog, ${timeouts} timeouts`
    )
    check('no unhandled rejection', unhandled === 0, unhandled)
  })
}

/** 5. A healthy service beside two CPU hogs, WatchdogSec=1s: no false restart; then stalls: one restart each. */
async function soakScenario (ctx) {
  const stallMs = 2000
  const meta = {
    id: 'soak',
    title: 'watchdog soak beside CPU hogs, then stalls',
    transport: 'koffi',
    injected:
      `WatchdogSec=1s, Restart=on-watchdog. Two CPU hogs (\`yes > /dev/null\`, nice 0) for ${N.healthyMs / 1000} s ` +
      'beside the healthy service; then the hogs stop and an HTTP request blocks the service\'s event loop for ' +
      `${stallMs} ms, ${N.stalls} times`,
    often: `${N.healthyMs / 1000} s soak, ${N.stalls} stalls`,
  }
  await scenario(meta, ctx, async (units) => {
    const lines = ['WatchdogSec=1s', 'Restart=on-watchdog', 'RestartSec=100ms']
    const svc = await startService(ctx, 'soak', { SOAK_LATENESS: '1' }, lines, ['StartLimitIntervalSec=0'])
    units.push(svc.unit)
    const soakFrom = Date.now()
    const soakHogs = startHogs(2)
    let cpuSeconds = 0
    try {
      for (let left = N.healthyMs; left > 0; left -= 60_000) {
        await sleep(Math.min(60_000, left))
        if (left > 60_000) progress(`soak: ${((Date.now() - soakFrom) / 1000).toFixed(0)} s of ${N.healthyMs / 1000}`)
      }
    } finally {
      cpuSeconds = soakHogs.reduce((sum, hog) => sum + cpuTime(hog.pid), 0)
      for (const hog of soakHogs) {
        hog.kill('SIGKILL')
        hogs.delete(hog)
      }
    }
    const soakMs = Date.now() - soakFrom
    const lateness = await call(svc.port, '/lateness')
    const report = await call(svc.port, '/report')
    await consoleBarrier(ctx)
    const healthy = await ctx.sd.show(svc.unit, PROPS)
    const pings = notificationsFor(ctx, svc.unit, soakFrom).filter((n) => n.watchdog)
    let maxGap = 0
    for (let i = 1; i < pings.length; i++) maxGap = Math.max(maxGap, pings[i].t - pings[i - 1].t)
    const falseTimeouts = logLines(ctx, svc.unit, 'Watchdog timeout', soakFrom).length
    const unhealthy = serviceEvents(svc.log).filter((e) => e.event === 'unhealthy').length
    const cores = fmt(cpuSeconds / (soakMs / 1000), 2)
    observe('soak length; CPU the two hogs got', `${fmt(soakMs / 1000, 0)} s; ${cores} cores on average`)
    const gaps = `${pings.length}; ${maxGap} ms (timeout 1000 ms)`
    observe('watchdog pings the manager accepted; longest gap between two', gaps)
    observe("service's worst timer lateness (100 ms timer)", `${fmt(lateness.maxLateMs)} ms`)
    observe('unhealthy reports; restarts during the soak', `${unhealthy}; ${healthy.NRestarts}`)
    check(
      '0 false restarts beside the CPU hogs',
      healthy.NRestarts === '0' && falseTimeouts === 0 && healthy.ActiveState === 'active' &&
        healthy.MainPID === String(svc.report.pid),
      `NRestarts=${healthy.NRestarts}, ${falseTimeouts} watchdog timeouts`
    )
    checkNoProblems(report)

    const stallsFrom = Date.now()
    const restartMs = []
    for (let i = 0; i < N.stalls; i++) {
      const before = await ctx.sd.show(svc.unit, PROPS)
      const t = Date.now()
      await call(svc.port, `/stall?ms=${stallMs}`)
      if (!(await restartedAfter(ctx, svc.unit, before))) break
      restartMs.push(Date.now() - t)
      await waitFor(() => call(svc.port, '/report', 2000).catch(() => undefined), 10_000)
    }
    await consoleBarrier(ctx)
    const props = await ctx.sd.show(svc.unit, PROPS)
    const timeouts = logLines(ctx, svc.unit, 'Watchdog timeout', stallsFrom).length
    const watchdogResults = logLines(ctx, svc.unit, "Failed with result 'watchdog'", stallsFrom).length
    const restarted = restartMs.length
    observe('stalls injected; restarts seen', `${N.stalls}; ${restarted}, NRestarts=${props.NRestarts}`)
    observe("manager: 'Watchdog timeout', Result=watchdog", `${timeouts}, ${watchdogResults}`)
    observe(
      'from the stall request to the restarted unit active: median / max',
      restarted ? `${median(restartMs)} / ${Math.max(...restartMs)} ms` : 'n/a'
    )
    check(
      `${N.stalls} stalls, ${N.stalls} restarts, each Result=watchdog`,
      [restarted, Number(props.NRestarts), timeouts, watchdogResults].every((n) => n === N.stalls),
      `${restarted} seen, NRestarts=${props.NRestarts}, ${timeouts} timeouts, ${watchdogResults} Result=watchdog`
    )
  })
}

/**
 * Busy loops beside the manager, at this process's nice level (0), outside its cgroup: they compete with the
 * service as any other process on the machine would. Killed in finally blocks and on exit, and by the kernel
 * if this process dies first (setpriv --pdeathsig).
 */
function startHogs (count) {
  const started = []
  for (let i = 0; i < count; i++) {
    const args = ['--pdeathsig', 'KILL', '/bin/sh', '-c', 'exec yes > /dev/null']
    const hog = spawn('/usr/bin/setpriv', args, { stdio: 'ignore' })
    hogs.add(hog)
    started.push(hog)
  }
  return started
}

/** utime + stime of a process, in seconds (USER_HZ is 100 on Linux). */
function cpuTime (pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

function gitDescribe () {
  try {
    const sha = execFileSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const status = ['-C', repo, 'status', '--porcelain', '--', 'packages/core/src']
    const dirty = execFileSync('git', status, { encoding: 'utf8' }).trim()
    return dirty ? `${sha} with uncommitted changes to packages/core/src` : sha
  } catch {
    return 'unknown'
  }
}

// ---- the run ----
const outDir = quick ? join(repo, '.soak-quick') : repo
mkdirSync(quick ? outDir : join(repo, 'reliability'), { recursive: true })
results.machine = {
  node: process.version,
  cores: cpus().length,
  core: JSON.parse(readFileSync(join(repo, 'packages/core/package.json'), 'utf8')).version,
  commit: gitDescribe(),
}
// The fd transport needs systemd ≥ 253: the Debian trixie root the tests use (built once, ~1 min, cached).
if (!quick && debianRootSkipReason()) execFileSync('bash', [join(repo, 'scripts/debian-root.sh')], { stdio: 'inherit' })
try {
  const host = await startObservedManager()
  results.machine.systemd = host.sd.version
  try {
    await reexecScenario(host, { transport: 'koffi' })
    await freezeBurstScenario(host, { transport: 'koffi' })
    await longFreezeScenario(host, { transport: 'koffi' })
    await socketGoneScenario(host, { transport: 'koffi' })
    await stormScenario(host, { transport: 'koffi' })
    await stormScenario(host, { transport: 'unix-dgram' })
    await healthScenario(host)
    await soakScenario(host)
  } finally {
    await host.stop(quick ? join(outDir, 'manager-252.log') : undefined)
  }
  const reason = debianRootSkipReason()
  if (reason) {
    skipAll('systemd 257 scenarios (fd transport)', reason)
    results.skipped257 = reason
  } else {
    const trixie = await startObservedManager({ root: DEBIAN_ROOT, binds: [repo] })
    results.machine.systemd257 = trixie.sd.version
    const node257 = execFileSync('chroot', [DEBIAN_ROOT, '/usr/bin/node', '--version'], { encoding: 'utf8' })
    results.machine.node257 = node257.trim()
    // OpenFile= hands the service a socket already connected to the notify socket: the fd transport.
    const openFile = [`OpenFile=${trixie.sd.notifySocket}:notify`]
    try {
      await reexecScenario(trixie, { transport: 'fd', extraLines: openFile })
      await socketGoneScenario(trixie, { transport: 'fd', extraLines: openFile })
      await longFreezeScenario(trixie, { transport: 'fd', extraLines: openFile })
    } finally {
      await trixie.stop(quick ? join(outDir, 'manager-257.log') : undefined)
    }
  }
} catch (error) {
  current = { id: 'setup', title: 'starting the managers', systemd: 'n/a', checks: [], observed: [] }
  results.scenarios.push(current)
  check('the managers started', false, String(error?.message ?? error).split('\n')[0])
  progress(error?.stack ?? error)
} finally {
  releaseFaults()
}

results.seconds = (Date.now() - started) / 1000
writeFileSync(join(outDir, 'RELIABILITY.md'), renderReport(results))
const resultsFile = join(quick ? outDir : join(repo, 'reliability'), 'results.json')
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`)
const took = `${results.seconds.toFixed(0)} s: ${totals.pass} passed, ${totals.fail} failed`
progress(`wrote ${join(outDir, 'RELIABILITY.md')} in ${took}`)
finishTap()
process.exit(totals.fail > 0 ? 1 : 0)
