// Logging to the journal: lines per second and event-loop time per line, for the same burst of pino-shaped lines
// (a message and 3 fields) written four ways, each by a fresh Node process (journal-writer.mjs) against a fresh
// private systemd-journald (the harness's startJournald(): its own mount namespace, volatile journal, no rate
// limit). The writer runs inside that namespace (nsenter), so /run/systemd/journal/* are that journald's: libsystemd
// (sd-notify) has the socket path built in. Every line is counted back, from the journal with `journalctl -D …
// -o json _PID=<writer>` (or from the file), and the last one's __REALTIME_TIMESTAMP (when journald took it) ends
// the run's clock. Methods take turns over the rounds; medians are reported.
//
// A datagram socket queues at most net.unix.max_dgram_qlen datagrams. The kernel's default is 10; systemd raises
// it to 512 at boot (bump_unix_max_dgram_qlen() in src/core/main.c), so every systemd host has 512. This VM boots
// without systemd (10), so the measurement runs in a private network namespace (the sysctl is per namespace, and
// journald's socket takes the value of the namespace it is created in) with 512, the datagram methods also with 10.
// Used by run.mjs; alone (as root, under the systemd lock): node benchmarks/journal.mjs [--quick]
import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { journaldSkipReason, startJournald } from '@sdnotify/systemd-harness'

const here = dirname(fileURLToPath(import.meta.url))
const self = fileURLToPath(import.meta.url)
const WARM_UP = 100 // journal-writer.mjs's warm-up lines, counted apart
const QLEN = '/proc/sys/net/unix/max_dgram_qlen'

export const JOURNAL_METHODS = {
  journalStream: {
    name: 'pino → journalStream() → journald',
    what: 'ours: native entries, fields kept (koffi sendto, non-blocking; queued, in order, while journald is busy)',
  },
  'pino-file': {
    name: 'pino → stdout → a file',
    what: "pino's default destination (SonicBoom on fd 1, asynchronous writes), stdout redirected to a file in /tmp",
  },
  'pino-stream': {
    name: 'pino → stdout → journald',
    what: "the same, stdout connected to journald's stream socket (StandardOutput=journal; here systemd-cat): " +
      'each line one MESSAGE of JSON, priority 6',
  },
  'sd-notify': {
    name: 'sd-notify log.info() → journald',
    what: 'baseline: sd_journal_print(3) in libsystemd, a blocking sendmsg(); fields only as text in MESSAGE',
  },
}

/** [max_dgram_qlen, methods]: every method as on a systemd host, then the datagram ones with the kernel default. */
const SETTINGS = [
  [512, Object.keys(JOURNAL_METHODS)],
  [10, ['journalStream', 'sd-notify']],
]

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

/** One writer process; resolves with its result (journal-writer.mjs), the lines that arrived and when the last did. */
async function runWriter (journald, method, lines, sdNotify) {
  const tag = `${process.pid}-${method}`
  const out = join(tmpdir(), `sdnotify-bench-journal-${tag}.json`)
  const file = join(tmpdir(), `sdnotify-bench-journal-${tag}.log`)
  const writerMethod = method.startsWith('pino-') ? 'pino-stdout' : method
  const writer = [process.execPath, join(here, 'journal-writer.mjs'), writerMethod, String(lines)]
  // systemd-cat connects its stdout to journald's stream socket (sd_journal_stream_fd(3)) and execs the writer.
  const command = method === 'pino-stream' ? ['/usr/bin/systemd-cat', '-t', 'bench-stdout', ...writer] : writer
  const env = { ...process.env, BENCH_OUT: out, BENCH_SD_NOTIFY: sdNotify ?? '' }
  delete env.NODE_OPTIONS
  const stdout = method === 'pino-file' ? openSync(file, 'w') : 'ignore'
  try {
    const child = spawn('/usr/bin/nsenter', ['-t', String(journald.pid), '-m', '-r', '--', ...command], {
      cwd: here,
      env,
      stdio: ['ignore', stdout, 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000)
    const code = await new Promise((resolve) => child.once('exit', (status, signal) => resolve(status ?? signal)))
    clearTimeout(timer)
    if (!existsSync(out)) return { error: `writer exited with ${code}: ${stderr.trim().slice(0, 300)}` }
    const result = JSON.parse(readFileSync(out, 'utf8'))
    if (result.error) return result
    if (method === 'pino-file') {
      const written = readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('"request handled"'))
      return { ...result, stored: written.length, storedMs: result.wallMs }
    }
    // journald may still be reading (a stream socket's buffer outlives the writer): wait for every line.
    const all = await journald.waitForEntries([`_PID=${result.pid}`], lines + WARM_UP, 60_000, ['MESSAGE'])
    const ours = all.filter((e) => typeof e.MESSAGE === 'string' && e.MESSAGE.includes('request handled'))
    const lastUs = Math.max(...ours.map((e) => Number(e.__REALTIME_TIMESTAMP)))
    return { ...result, stored: ours.length, storedMs: lastUs / 1000 - result.startedAtMs }
  } finally {
    if (typeof stdout === 'number') closeSync(stdout)
    rmSync(out, { force: true })
    rmSync(file, { force: true })
  }
}

/** Inside a private network namespace: set max_dgram_qlen, then run `methods` `rounds` times each. */
async function measureHere (qlen, methods, lines, rounds, sdNotify) {
  writeFileSync(QLEN, String(qlen))
  const actual = Number(readFileSync(QLEN, 'utf8'))
  if (actual !== qlen) throw new Error(`journal bench: ${QLEN} is ${actual}, not ${qlen}`)
  const runs = Object.fromEntries(methods.map((method) => [method, []]))
  for (let round = 0; round < rounds; round++) {
    for (const method of methods) {
      const journald = await startJournald() // its socket is created here: it gets this namespace's qlen
      try {
        runs[method].push(await runWriter(journald, method, lines, sdNotify))
      } finally {
        await journald.stop()
      }
    }
  }
  return Object.entries(runs).map(([method, results]) => {
    const row = { method, ...JOURNAL_METHODS[method], qlen, lines, rounds }
    const failed = results.find((r) => r.error)
    if (failed) return { ...row, error: failed.error }
    const storedMs = median(results.map((r) => r.storedMs))
    return {
      ...row,
      linesPerSecond: lines / (storedMs / 1000),
      storedMs,
      wallMs: median(results.map((r) => r.wallMs)),
      loopUsPerLine: (median(results.map((r) => r.loopMs)) * 1000) / lines,
      syncUsPerLine: (median(results.map((r) => r.syncMs)) * 1000) / lines,
      stored: results.reduce((sum, r) => sum + r.stored, 0),
      written: lines * results.length,
      fellBackToStdout: results[0]?.counters ? results.reduce((sum, r) => sum + r.counters.fellBackToStdout, 0) : null,
    }
  })
}

/** Every setting, each in its own network namespace (`unshare --net`). One row per method and setting. */
export async function measureJournal ({ lines, rounds, sdNotify }) {
  const skip = journaldSkipReason()
  if (skip) return { skipped: skip }
  const rows = []
  for (const [qlen, methods] of SETTINGS) {
    const setting = JSON.stringify({ qlen, methods, lines, rounds, sdNotify })
    const args = ['--net', '--', process.execPath, self, '--inner', setting]
    const child = spawn('/usr/bin/unshare', args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    const code = await new Promise((resolve) => child.once('exit', resolve))
    const last = stdout.trim().split('\n').pop() ?? ''
    if (code !== 0 || !last.startsWith('[')) {
      const error = `the measurement exited with ${code}: ${stdout.trim().slice(-300)}`
      rows.push(...methods.map((method) => ({ method, ...JOURNAL_METHODS[method], qlen, lines, rounds, error })))
    } else {
      rows.push(...JSON.parse(last))
    }
  }
  return { rows }
}

const inner = process.argv.indexOf('--inner')
if (inner > 0) {
  const { qlen, methods, lines, rounds, sdNotify } = JSON.parse(process.argv[inner + 1])
  console.log(JSON.stringify(await measureHere(qlen, methods, lines, rounds, sdNotify)))
  process.exit(0)
} else if (process.argv[1] === self) {
  const quick = process.argv.includes('--quick')
  const cache = process.env.SDNOTIFY_BENCH_CACHE ?? '/var/cache/sdnotify/bench'
  // Where run.mjs builds sd-notify (one directory per Node ABI), if it has.
  const baselines = join(cache, `baselines-abi${process.versions.modules}`)
  const built = existsSync(join(baselines, 'node_modules/sd-notify/build/Release/notify.node'))
  const result = await measureJournal({
    lines: quick ? 2000 : 20_000,
    rounds: quick ? 1 : 3,
    sdNotify: built ? join(baselines, 'package.json') : undefined,
  })
  if (result.skipped) console.log(`journal: cannot run here: ${result.skipped}`)
  for (const r of result.rows ?? []) {
    const name = `${r.name} (max_dgram_qlen ${r.qlen})`
    if (r.error) {
      console.log(`${name}: unavailable (${r.error})`)
      continue
    }
    const rate = `${Math.round(r.linesPerSecond)} lines/s (last stored after ${r.storedMs.toFixed(0)} ms)`
    const loop = `event loop ${r.loopUsPerLine.toFixed(2)} µs/line (in the write calls ${r.syncUsPerLine.toFixed(2)})`
    console.log(`${name}: ${rate}, ${loop}, ${r.stored}/${r.written} arrived, fell back ${r.fellBackToStdout ?? 'n/a'}`)
  }
}
