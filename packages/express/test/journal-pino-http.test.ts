// The README's pino-http snippet (fixtures/journal-app.mjs) as it runs in production: a non-root Type=notify
// service with StandardOutput=journal under a private systemd manager, its journalStream() on the default target
// ('auto'), logging to a real systemd-journald in the manager's mount namespace. Needs root; run under the systemd
// lock: `flock /tmp/sdnotify-systemd.lock npx tap test/journal-pino-http.test.ts`.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  type Journald,
  type JournalEntry,
  journaldSkipReason,
  type Manager,
  startJournald,
  startManager,
  systemdSkipReason,
  testPort,
} from '@sdnotify/systemd-harness'

const fixture = fileURLToPath(new URL('../fixtures/journal-app.mjs', import.meta.url))
const readme = fileURLToPath(new URL('../README.md', import.meta.url))

t.test("the README's pino-http code block is the fixture's, line for line", (t) => {
  const section = /## Logs in the journal \(pino-http\)[\s\S]*?```js\n([\s\S]*?)```/
  const documented = section.exec(readFileSync(readme, 'utf8'))
  const marked = /\/\/ README begin\n([\s\S]*?)\/\/ README end\n/.exec(readFileSync(fixture, 'utf8'))
  t.ok(documented && marked, 'both blocks found')
  const run = (marked?.[1] ?? '').split('\n').filter((line) => !line.endsWith('// test-only'))
  t.same(run, (documented?.[1] ?? '').split('\n'))
  t.end()
})

const skip = journaldSkipReason() ?? systemdSkipReason()
if (skip) t.comment(`skipping the real-journald test: ${skip}`)

const json = (value: JournalEntry[string] | undefined): unknown =>
  JSON.parse(typeof value === 'string' ? value : 'null')
const title = 'pino-http through journalStream(): one entry per line, PRIORITY per status, fields a query matches'

t.test(title, { skip }, async (t) => {
  const sd: Manager = await startManager()
  const started: { journald?: Journald } = {}
  t.teardown(async () => {
    await started.journald?.stop() // before the manager: it lives in the manager's mount namespace
    await sd.stop()
  })
  const journald = (started.journald = await startJournald({ manager: sd }))
  const port = testPort()
  await sd.writeService('api', fixture, [], {
    service: ['Type=notify', 'StandardOutput=journal', 'StandardError=journal', `Environment=PORT=${port}`,
      'TimeoutStartSec=15s'],
  })
  const start = await sd.systemctl(['start', 'api.service'])
  t.equal(start.code, 0, `api.service started ${start.stderr}`)
  const statuses = []
  for (const path of ['/ok', '/missing', '/boom']) {
    statuses.push((await fetch(`http://127.0.0.1:${port}${path}`)).status)
  }
  t.same(statuses, [200, 404, 500])

  const entries = await journald.waitForEntries(['SYSLOG_IDENTIFIER=api'], 4)
  t.equal(entries.length, 4, 'req.log.info, then one line per request')
  const native = entries.every((e) => e._TRANSPORT === 'journal' && e._UID === '65534')
  t.ok(native, 'native entries, sent by the service as nobody')
  const [placed, ok, missing, boom] = entries
  t.match(placed, { MESSAGE: 'order placed', PRIORITY: '6', ORDER_ID: '17', REQ_ID: '1' })
  t.match(json(placed?.REQ), { id: 1, method: 'GET', url: '/ok' }, 'pino-http req object: one JSON field, REQ')
  t.match(ok, { MESSAGE: 'request completed', PRIORITY: '6', REQ_ID: '1' })
  t.match(json(ok?.RES), { statusCode: 200 })
  t.ok(/^\d+$/.test(String(ok?.RESPONSE_TIME)), 'responseTime → RESPONSE_TIME')
  t.match(missing, { MESSAGE: 'request completed', PRIORITY: '4', REQ_ID: '2' }, '404 → warning')
  t.match(boom, { MESSAGE: 'request errored', PRIORITY: '3', REQ_ID: '3', ERR_MESSAGE: 'db down', ERR_CODE: 'E_DB' })
  const stack = /^Error: db down\n\s+at .*journal-app\.mjs/
  t.match(String(boom?.ERR_STACK), stack, "the route's own error: its stack, one field")
  t.match(json(boom?.RES), { statusCode: 500 })
  t.match(boom?._SYSTEMD_CGROUP, /\/api\.service$/, "from api.service's cgroup")

  // The README's queries. journald cannot name the unit here (the harness's cgroup is no systemd slice), so
  // `-t api` (SYSLOG_IDENTIFIER) stands in for `-u api`; -p and a field match work the same.
  const warnings = await journald.entries(['-t', 'api', '-p', 'warning'])
  t.same(warnings.map((e) => [e.PRIORITY, e.REQ_ID]), [['4', '2'], ['3', '3']], '-p warning: the 404 and the 500')
  const one = await journald.entries(['-t', 'api', 'REQ_ID=1'])
  t.same(one.map((e) => e.MESSAGE), ['order placed', 'request completed'], "REQ_ID=1: one request's lines")
  const stdio = await journald.entries(['_TRANSPORT=stdout'])
  t.same(stdio.map((e) => e.MESSAGE), [], 'nothing through the stdout stream (no stack printed line by line)')
  t.equal((await sd.systemctl(['stop', 'api.service'])).code, 0)
})
