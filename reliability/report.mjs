// Turns the soak's results into RELIABILITY.md: per fault, what was injected, how often, what was observed
// and which expectations held.

const mark = (ok) => (ok ? '✅' : '❌')
const cell = (value) => String(value).replace(/\|/g, '\\|')
const anchor = (s) => `${s.id}-${s.systemd}-${s.transport ?? ''}`.replace(/[^a-z0-9-]/gi, '-').toLowerCase()

function summaryRow (s) {
  const held = s.checks.filter((c) => c.ok).length
  const verdict = `${mark(held === s.checks.length)} ${held}/${s.checks.length}`
  const took = s.seconds === undefined ? '' : `${s.seconds.toFixed(0)} s`
  return `| [${s.title}](#${anchor(s)}) | ${s.systemd} | ${s.transport ?? ''} | ${verdict} | ${took} |`
}

function section (s) {
  const observed = s.observed.map(([what, value]) => `| ${cell(what)} | ${cell(value)} |`)
  return [
    `<a id="${anchor(s)}"></a>`,
    '',
    `## ${s.title} (systemd ${s.systemd}${s.transport ? `, ${s.transport}` : ''})`,
    '',
    ...(s.injected ? [`**Injected:** ${s.injected}.`, '', `**How often:** ${s.often}.`, ''] : []),
    ...(observed.length ? ['| observed | value |', '| --- | --- |', ...observed, ''] : []),
    '**Expectations:**',
    '',
    ...s.checks.map((c) => `- ${mark(c.ok)} ${c.name}${c.detail ? `: ${c.detail}` : ''}`),
    '',
  ].join('\n')
}

export function renderReport (results) {
  const m = results.machine
  const checks = results.scenarios.flatMap((s) => s.checks)
  const held = checks.filter((c) => c.ok).length
  const minutes = Math.max(1, Math.round(results.seconds / 60))
  const mode = results.quick ? ' (**quick mode**: short freezes and a one-minute soak; the CI smoke test)' : ''
  const trixie = m.systemd257 ?? `n/a (${results.skipped257 ?? 'not run'})`
  const nodes = [`Node ${m.node} (runner, systemd ${m.systemd ?? ''} services)`]
  if (m.node257) nodes.push(`${m.node257} (systemd ${m.systemd257} services)`)
  return `# Reliability

Produced by \`${results.command}\` on ${results.date}${mode}, in ${minutes} min.
Never edit it by hand: \`pnpm soak\` (as root; about ${results.quick ? 15 : minutes} minutes) rewrites it;
\`pnpm soak --quick\` (under 3 minutes, part of \`pnpm test\`) writes to \`.soak-quick/\` instead.

Every fault was injected into a private systemd manager started by the test harness: systemd ${m.systemd ?? 'n/a'} on
the host and systemd ${trixie} from a Debian trixie root. The service
([reliability/service.mjs](reliability/service.mjs)) runs as nobody under the default \`NotifyAccess=main\` and
uses only the public API of @sdnotify/core ${m.core} (\`createNotifier\`, \`status\`, \`send\`, \`ready\`,
\`watchdog.start\`), commit ${m.commit}.
${nodes.join(', ')}; ${m.cores} CPU cores.

How it is observed: the service keeps its own account of every call (when it was made, how it settled, with which
error) and reports it over HTTP, which keeps working while the manager is frozen. The manager's side is its own
log at debug level, which records every notification it accepts ("Got notification message from PID …"): a
pseudo-terminal is bind-mounted over /dev/console in the manager's mount namespace
([console-tap.mjs](reliability/console-tap.mjs)). Numbered messages go out alternately as \`status()\` (status-only:
while the manager does not take datagrams, a newer one may supersede it in the queue, since systemd keeps only the
latest StatusText) and as \`send({ status, extra: { X_SEQ } })\` (a combined message, which must never be dropped).
**Lost** counts combined messages that resolved but never reached the manager; **superseded** counts status-only
ones that resolved while a newer status took their place. Debug logging makes the manager slower per message than
in production.

${held} of ${checks.length} expectations held.

| fault | systemd | transport | expectations | took |
| --- | --- | --- | --- | --- |
${results.scenarios.map(summaryRow).join('\n')}

${results.scenarios.map(section).join('\n')}`
}
