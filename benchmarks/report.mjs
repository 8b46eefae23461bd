// Turns the benchmark results into BENCHMARKS.md (tables, targets) and an SVG bar chart of the latencies.
const IN_PROCESS = new Set(['koffi', 'unix-dgram', 'fd (OpenFile=, systemd 257)', 'koffi (same service, systemd 257)'])
const KIND = {
  koffi: 'ours, in-process (sendmsg via koffi)',
  'unix-dgram': 'ours, in-process (unix-dgram addon)',
  'fd (OpenFile=, systemd 257)':
    'ours, in-process, pure JS: asynchronous write to the passed socket (never blocks the event loop)',
  'koffi (same service, systemd 257)': 'ours, koffi chosen explicitly in the OpenFile= service above',
  'C sendto (floor, systemd 257)': 'floor: sendto() in C, from the same service (257 rows compare with it)',
  exec: 'ours, **fallback**: spawns systemd-notify',
  'sd-notify (npm)': 'baseline: native addon, libsystemd',
  'python3 one-liner': 'baseline: a python3 process per message',
  'C sendto (floor)': 'floor: sendto() in C',
}
const fmt = (n, digits = 1) => {
  if (n === null || n === undefined || Number.isNaN(n)) return 'n/a'
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits)
}

export function renderReport (results, { percentile, median, command }) {
  const failures = []
  const target = (ok, text) => {
    if (!ok) failures.push(text)
    return `| ${ok ? '✅ met' : '❌ missed'} | ${text} |`
  }
  const m = results.machine
  // Each row is compared with the C floor measured in the same place (the host's 252, or the trixie root).
  const floors = {}
  for (const [name, r] of Object.entries(results.latency)) {
    if (name.startsWith('C sendto (floor') && r.us) {
      floors[name.includes('257') ? '257' : 'host'] = { idle: median(r.us), warm: r.warmUs ? median(r.warmUs) : null }
    }
  }
  const floorFor = (name) => floors[name.includes('systemd 257') ? '257' : 'host']
  const ratioText = (r) => (r === null ? 'n/a' : `${fmt(r)}×`)
  const latencyRows = Object.entries(results.latency).map(([name, r]) => {
    if (!r.us) {
      return { name, line: `| ${name} | – | – | – | – | – | – | – | ${KIND[name] ?? ''}: unavailable (${r.error}) |` }
    }
    const med = median(r.us)
    const warm = r.warmUs ? median(r.warmUs) : null
    const floor = floorFor(name)
    const ratio = floor ? med / floor.idle : null
    const warmRatio = warm !== null && floor?.warm ? warm / floor.warm : null
    const cells = [
      name,
      fmt(med),
      fmt(percentile(r.us, 99)),
      warm === null ? '–' : fmt(warm),
      r.warmUs ? fmt(percentile(r.warmUs, 99)) : '–',
      r.loopUs ? fmt(median(r.loopUs)) : '–',
      `${ratioText(ratio)} / ${warm === null ? '–' : ratioText(warmRatio)}`,
      r.us.length,
      KIND[name] ?? '',
    ]
    return { name, med, ratio, warmRatio, loop: r.loopUs ? median(r.loopUs) : null, line: `| ${cells.join(' | ')} |` }
  })
  const burstRows = results.burst.map(
    (b) =>
      `| ${b.method} | ${b.count} | ${b.received} ` +
      `| ${b.received === b.count ? 'all' : `**${b.count - b.received} lost**`} ` +
      `| ${b.inOrder ? 'yes' : 'no'} | ${fmt(b.ms)} | ${b.maxLoopDelayMs === null ? 'n/a' : fmt(b.maxLoopDelayMs)} ` +
      `| ${b.childProcesses ?? 'n/a'} |`
  )
  const startupRows = results.startup.map(
    (s) => `| ${s.mode === 'unset' ? 'NOTIFY_SOCKET unset' : `NOTIFY_SOCKET set, ${s.mode}`} | ${fmt(s.importMs, 2)} ` +
      `| ${fmt(s.referenceMs, 2)} | ${fmt(s.firstSendMs, 2)} | ${fmt(s.rssAddedMb)} | ${s.native} |`
  )
  const wakeups = results.wakeups ?? []
  const wakeupRows = wakeups.map((w) => {
    let state = 'n/a (no watchdog)'
    if (w.pinged !== null) state = w.pinged ? 'yes' : '**no ping seen**'
    if (!w.active) state += ', **not active**'
    return `| ${w.name} | ${fmt(w.per10s, 0)} | ${w.wakeups} | ${fmt(w.cpuPercent, 2)} | ${state} |`
  })
  const journal = results.journal ?? { skipped: 'not measured' }
  const journalLines = journal.rows?.[0]?.lines ?? 'N'
  const journalRounds = journal.rows?.[0]?.rounds ?? 'N'
  const journalRows = (journal.rows ?? []).map((r) => {
    if (r.error) return `| ${r.name} | ${r.qlen} | | | | | | ${r.what}: **unavailable**, ${r.error} |`
    const arrived = r.stored === r.written ? `all ${r.written}` : `**${r.stored} of ${r.written}**`
    const cells = [r.name, r.qlen, fmt(r.linesPerSecond, 0), fmt(r.storedMs)]
    cells.push(fmt(r.loopUsPerLine), fmt(r.syncUsPerLine), arrived, r.what)
    return `| ${cells.join(' | ')} |`
  })
  const oursJournal = (journal.rows ?? []).filter((r) => r.method === 'journalStream' && !r.error)
  const restartRows = results.restart.map(
    (r) => `| ${r.name} | ${r.restarts}${r.failed ? ` (**${r.failed} failed**)` : ''} | ${fmt(r.wallMs)} ` +
      `| ${fmt(r.activeAfterExecMs)} | ${fmt(r.wallMs - r.activeAfterExecMs)} | ${r.portOpen}/${r.restarts} |`
  )

  const loadRows = (results.restartLoad ?? []).map(
    (r) => `| ${r.name} | ${r.restarts} | ${r.requests} | ${r.refused ? `**${r.refused}**` : 0} | ${r.inFlight} ` +
      `| ${fmt(r.maxLatencyMs)} |`
  )
  const stored = (results.restartLoad ?? [])[0]
  const ours = latencyRows.filter((r) => IN_PROCESS.has(r.name) && r.ratio)
  const native = latencyRows.find((r) => r.name === 'sd-notify (npm)' && r.ratio)
  const unset = results.startup.find((s) => s.mode === 'unset')
  const oursBurst = results.burst.filter((b) => b.method === 'koffi' || b.method === 'unix-dgram')
  const notify = results.restart[0]
  const wakeupsOf = (mode) => wakeups.find((w) => w.mode === mode)
  const oursIdle = wakeupsOf('core')
  const seconds = (ms = 10_000) => ms / 1000
  const wakeupWindow = `${seconds(wakeups[0]?.windowMs)} s, starting ${seconds(wakeups[0]?.settleMs)} s after start-up`
  const per10s = (mode) => (wakeupsOf(mode) ? `${fmt(wakeupsOf(mode).per10s, 0)}` : 'not measured')
  const targets = [
    target(
      ours.length > 0 && ours.every((r) => r.warmRatio !== null && r.warmRatio <= 3),
      'in-process transports within 3× of the C floor per message, judged warm ' +
        `(${ours.map((r) => `${r.name} ${ratioText(r.warmRatio)}`).join(', ')}); ` +
        `after an idle gap: ${ours.map((r) => `${r.name} ${ratioText(r.ratio)}`).join(', ')}` +
        (native
          ? `; for context, the native sd-notify addon: ${ratioText(native.warmRatio)} warm, ` +
            `${ratioText(native.ratio)} after idle`
          : '')
    ),
    target(
      unset.importMs < 5 && unset.native === 0,
      `with NOTIFY_SOCKET unset, importing core adds < 5 ms (${fmt(unset.importMs, 2)} ms, of which a one-line ` +
        `package costs ${fmt(unset.referenceMs, 2)} ms) and loads no native module (${unset.native} loaded)`
    ),
    target(
      oursBurst.every((b) => b.received === b.count && b.inOrder && b.childProcesses === 0),
      'zero messages lost in the burst, in order ' +
        `(${oursBurst.map((b) => `${b.method} ${b.received}/${b.count}`).join(', ')}); ` +
        'no child process spawned by in-process transports ' +
        `(${oursBurst.map((b) => `${b.method} ${b.childProcesses ?? 'not counted'}`).join(', ')})`
    ),
    target(
      notify.portOpen === notify.restarts && !notify.failed,
      `the port accepts connections when the notify unit is reported active (${notify.portOpen}/${notify.restarts})`
    ),
    target(
      notify.wallMs - notify.activeAfterExecMs <= 50,
      "notify unit's restart wall time within 50 ms of the application's own exec-to-listening time " +
        `(gap ${fmt(notify.wallMs - notify.activeAfterExecMs)} ms, which includes stopping the old process)`
    ),
    ...(stored
      ? [
          target(
            stored.refused === 0 && stored.inFlight === 0,
            `restarts under load with fdStore: no failed request (${stored.refused} refused, ` +
              `${stored.inFlight} in flight, over ${stored.restarts} restarts and ${stored.requests} requests)`
          ),
        ]
      : []),
    ...(oursIdle
      ? [
          target(
            oursIdle.per10s <= 40 && oursIdle.active && oursIdle.pinged,
            'idle wake-ups: an idle service with the default watchdog (WatchdogSec=30s) wakes ≤ 40 times per 10 s ' +
              `(${fmt(oursIdle.per10s, 0)}; sd-notify, which only pings: ${per10s('sd-notify')}; ` +
              `the previous watchdog's 20 ms histogram: ${per10s('histogram')})`
          ),
        ]
      : []),
    ...(oursJournal.length
      ? [
          target(
            oursJournal.every((r) => r.stored === r.written && r.fellBackToStdout === 0),
            'logging: every line journalStream() was given is in the journal, none went to stdout instead (' +
              oursJournal.map((r) => `max_dgram_qlen ${r.qlen}: ${r.stored}/${r.written}`).join(', ') + ')'
          ),
        ]
      : []),
  ]

  const markdown = `# Benchmarks

Produced by \`${command}\` on ${new Date().toISOString().slice(0, 10)}${
  results.quick ? ' (**quick mode**: small counts, a smoke test, not for comparison)' : ''
}. Every number comes from real
systemd: a private user manager started by the test harness (systemd ${m.systemd} on the host; systemd
${m.systemdFd ?? 'n/a'} from a Debian trixie root for the fd transport). Reproduce with \`pnpm bench\` (as root;
about 5 minutes) or \`pnpm bench --quick\` (under a minute).

Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GiB. Node ${m.node}, koffi ${m.koffi}, unix-dgram ${m.unixDgram},
sd-notify 2.8.0, ${m.python}, gcc ${m.gcc}, net.unix.max_dgram_qlen ${m.maxDgramQlen ?? 'n/a'}.

## 1. Latency of one notification

Each message (\`STATUS=…\`) is sent from a service to the manager's notify socket, one at a time into an
idle socket (1 ms apart); the time is until the call's promise settles. µs; lower is better. Two spacings,
the same for every method including the C floor ([gaps.mjs](benchmarks/gaps.mjs)): **after idle** sleeps
between messages (what an occasional notification pays: the process wakes with cold caches), **warm**
busy-waits (the per-message cost alone). Spawning methods are timed after idle only. The methods take
turns in ${results.counts.rounds ?? 1} rounds and their samples are pooled, so that the machine's drift \
(a VM's neighbours) falls on all alike. **Event loop** is
the time until the call returned: an asynchronous write (the fd transport) completes on libuv's thread
pool, so the event loop pays only that part. Rows marked systemd 257 ran in a service of the Debian trixie root
and are compared with the C floor run from that same service.

| method | after idle median | p99 | warm median | p99 | event loop | × C floor (idle / warm) | n | what it is |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${latencyRows.map((r) => r.line).join('\n')}

![median latency per method after an idle gap, log scale](${results.quick ? 'latency.svg' : 'benchmarks/latency.svg'})

## 2. Delivery under a burst

${results.counts.burst} \`STATUS=<n>\` messages as fast as each API allows, to a receiver that spends 100 µs
per message (what the manager costs, measured on systemd 252) and counts them and their order.

| method | sent | received | lost | in order | wall ms | max event-loop delay ms | child processes |
| --- | --- | --- | --- | --- | --- | --- | --- |
${burstRows.join('\n')}

The spawning methods (exec, python3) are left out here: ${results.counts.burst} processes would take minutes;
each of their messages is delivered or fails on its own.

## 3. Start-up cost

A fresh Node process ([startup-probe.mjs](benchmarks/startup-probe.mjs)): \`await import('@sdnotify/core')\`,
\`createNotifier()\`, the first \`ready()\`. Node's module loader is cold in a fresh process (its first
bare-specifier import costs ~3 ms whatever the package), while an application has imported its framework
before us: the probe first imports a one-line package, then times a second one (the reference: what any
package costs the loader), then ours. Medians of ${results.counts.startup} runs.

| case | import ms | one-line package ms (reference) | first send ms | RSS added MB | native modules loaded |
| --- | --- | --- | --- | --- | --- |
${startupRows.join('\n')}

## 4. Rolling restart

\`systemctl restart\` of [examples/fastify](examples/fastify) (Fastify 5), run as nobody. "Active after exec" is
systemd's own ActiveEnterTimestamp − ExecMainStartTimestamp: for the notify unit, the app's time from exec
to listening. "Port open" is a connect made the moment \`systemctl restart\` returned.

| unit | restarts | wall ms (median) | active after exec ms | wall − that | port open when active |
| --- | --- | --- | --- | --- | --- |
${restartRows.join('\n')}

### Restart under load

${stored?.restarts ?? 'N'} × \`systemctl restart\` while 4 clients make one request per fresh connection, \
against the same
node:http service (core's [fd-store fixture](packages/core/fixtures/fd-store-server.mjs), which boots in ~300 ms)
run four ways ([restart-load.mjs](benchmarks/restart-load.mjs)). "Refused": the kernel refused the connection
(nothing listening); "in flight": accepted, then cut off by a process that went away; the worst latency is that of
a request that waited in the listening socket's backlog through a restart.

| unit | restarts | requests | refused | in flight | worst latency ms |
| --- | --- | --- | --- | --- | --- |
${loadRows.length ? loadRows.join('\n') : '| not measured | – | – | – | – | – |'}

## 5. Idle wake-ups

What a watchdog costs a service with nothing to do ([wakeups.mjs](benchmarks/wakeups.mjs)): each variant is a
\`Type=notify\` service with \`WatchdogSec=30s\`, all running at once. The main thread's voluntary context switches
(each sleep in \`epoll_wait\` is one) count how often it woke, and utime + stime its CPU, over ${wakeupWindow}
(V8's memory reducer wakes any process a few times about 8 s after start). Ours checks the event loop with a
timer every second (a quarter of \`maxEventLoopDelayMs\`, at most 1 s) and pings every 15 s; sd-notify pings
and checks nothing.

| watchdog | wake-ups per 10 s | wake-ups in the window | CPU % | pinged, still active |
| --- | --- | --- | --- | --- |
${wakeupRows.length ? wakeupRows.join('\n') : '| not measured | – | – | – | – |'}

## 6. Logging to the journal

${journalLines} lines of one shape, \`logger.info({ reqId, userId, route }, 'request handled')\`
(sd-notify: \`log.info('request handled', 'reqId=… userId=42 route=…')\`), in one synchronous burst from a fresh
process after 100 warm-up lines ([journal-writer.mjs](benchmarks/journal-writer.mjs)), each run against a private
systemd-journald of its own (volatile, no rate limit; [journal.mjs](benchmarks/journal.mjs)); medians of
${journalRounds} round(s). **Lines/s**: the lines ÷ the time from the first write until journald took the last one
(its \`__REALTIME_TIMESTAMP\`; for the file, until the last write completed). **Event loop**: the writer's
event-loop busy time (\`performance.eventLoopUtilization()\`) from the first write until the method had handed every
line on (the burst, and every later turn spent retrying a busy journald), per line; **in write calls**: the part
spent inside \`info()\`. **Arrived**: counted back with \`journalctl -D … -o json _PID=…\` (the file: its lines),
over all rounds. journald's work per entry grows with its fields: ours carry 10 (each key, pino's time, pid and
hostname, and the original line), sd-notify's 2, a stdout line 1 (the JSON). A datagram socket holds
\`net.unix.max_dgram_qlen\` entries: systemd sets 512 at boot (what every systemd host has), this machine's kernel
default is ${m.maxDgramQlen ?? 'n/a'}; the runs use a private network namespace with the value shown.

| method | max_dgram_qlen | lines/s | last stored, ms | event loop µs/line | in write calls µs/line | arrived | what |
| --- | --- | --- | --- | --- | --- | --- | --- |
${journalRows.length ? journalRows.join('\n') : `| not measured: ${journal.skipped} | | | | | | | |`}

## Targets

| result | target |
| --- | --- |
${targets.join('\n')}
${Object.keys(results.baselines).length
  ? `\nBaselines not measured: ${Object.entries(results.baselines).map(([k, v]) => `${k}: ${v}`).join('; ')}\n`
  : ''}`

  // A horizontal bar chart of the medians, log scale, no dependencies.
  const bars = latencyRows.filter((r) => r.med)
  const max = Math.max(...bars.map((r) => r.med))
  const min = Math.min(...bars.map((r) => r.med))
  const lo = Math.log10(min / 2)
  const hi = Math.log10(max * 2)
  const width = 760
  const left = 230
  const rowH = 30
  const height = 50 + bars.length * rowH
  const x = (v) => left + ((Math.log10(v) - lo) / (hi - lo)) * (width - left - 80)
  const colour = (name) => {
    if (IN_PROCESS.has(name)) return '#2b7a3d'
    if (name === 'exec') return '#b26a00'
    return name.includes('floor') ? '#555' : '#8a8a8a'
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${left}" y="20" font-weight="bold">Median latency of one notification after an idle gap (µs, log scale)</text>
${bars
  .map((r, i) => {
    const y = 35 + i * rowH
    return `<text x="${left - 8}" y="${y + 17}" text-anchor="end">${r.name}</text>
<rect x="${left}" y="${y + 4}" width="${Math.max(2, x(r.med) - left)}" height="18" fill="${colour(r.name)}"/>
<text x="${x(r.med) + 6}" y="${y + 17}">${fmt(r.med)} µs</text>`
  })
  .join('\n')}
</svg>
`
  return { markdown, svg, failures }
}
