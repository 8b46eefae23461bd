// Fastify's logger through @sdnotify/core's journalStream() (the README's "Logs in the journal"), against a real
// systemd-journald in a private mount namespace (harness startJournald): what Fastify logs at which priority, the
// request id as a field journalctl matches, a thrown error as one entry, hostile messages, and journald going
// away mid-run. In-process: the stream is told `target: 'journal'` and the private journald's socket, where the
// README's service reaches /run/systemd/journal/socket through 'auto'. Needs root; run under the systemd lock:
// `flock /tmp/sdnotify-systemd.lock npx tap test/journal.test.ts`.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import t from 'tap'
import { journalStream } from '@sdnotify/core/journal'
import { type Journald, type JournalEntry, journaldSkipReason, startJournald } from '@sdnotify/systemd-harness'

const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')

t.test('the README documents the stream, a priority query and a field query', (t) => {
  const section = /## Logs in the journal\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? ''
  t.match(section, "Fastify({ logger: { stream: journalStream({ identifier: 'api' }) } })")
  t.match(section, /journalctl -u api -p warning /)
  t.match(section, /journalctl -u api REQ_ID=req-/)
  t.end()
})

const skip = journaldSkipReason()
if (skip) t.comment(`skipping the real-journald test: ${skip}`)

const messages = (entries: JournalEntry[]) => entries.map((e) => e.MESSAGE)

t.test('Fastify({ logger: { stream: journalStream() } }) against a real journald', { skip }, async (t) => {
  const journald: Journald = await startJournald()
  t.teardown(() => journald.stop())
  const identifier = `fastify${process.pid}`
  const out: string[] = []
  const warnings: string[] = []
  const stream = journalStream({
    target: 'journal',
    socket: journald.socket,
    identifier,
    stdout: { write: (line: string) => out.push(line) },
    onWarning: (_message, code) => warnings.push(code),
  })
  const app = Fastify({ logger: { stream } })
  t.teardown(() => app.close())
  app.get('/ok', (request, reply) => {
    request.log.warn({ itemId: 3 }, 'low stock')
    void reply.send('ok')
  })
  app.get('/boom', () => {
    throw Object.assign(new Error('db down'), { code: 'E_DB' })
  })
  app.get('/hostile', (request, reply) => {
    request.log.info({ 'user.name': 'zoë', nul: 'a\u0000b' }, 'first line\nsecond line')
    request.log.info('lone surrogate \ud800 here')
    void reply.send('ok')
  })
  const statuses = []
  for (const url of ['/ok', '/boom', '/missing', '/hostile']) statuses.push((await app.inject(url)).statusCode)
  t.same(statuses, [200, 500, 404, 200])
  await stream.flush()

  const all = await journald.waitForEntries([`SYSLOG_IDENTIFIER=${identifier}`], 13)
  t.equal(all.length, 13, 'every line Fastify wrote is one entry')
  t.equal(stream.counters().sent, 13)
  t.ok(all.every((e) => e._TRANSPORT === 'journal' && typeof e.REQ_ID === 'string'), 'native entries, each with REQ_ID')
  const reqIds = [...new Set(all.map((e) => e.REQ_ID))]
  t.equal(reqIds.length, 4, 'one REQ_ID per request')
  const [okId, boomId, missingId, hostileId] = reqIds as string[]

  const ok = await journald.entries([`REQ_ID=${okId}`])
  t.same(ok.map((e) => [e.MESSAGE, e.PRIORITY]), [
    ['incoming request', '6'],
    ['low stock', '4'],
    ['request completed', '6'],
  ], 'request lines at 6, request.log.warn at 4')
  t.match(ok[0], { REQ: /"method":"GET","url":"\/ok"/ }, "Fastify's req object: one JSON field, REQ")
  t.match(ok[1], { ITEM_ID: '3' })
  t.match(ok[2], { RES: '{"statusCode":200}' })
  t.ok(Number(ok[2]?.RESPONSE_TIME) >= 0, 'responseTime → RESPONSE_TIME')

  const boom = await journald.entries([`REQ_ID=${boomId}`])
  t.same(boom.map((e) => [e.MESSAGE, e.PRIORITY]), [
    ['incoming request', '6'],
    ['db down', '3'],
    ['request completed', '6'],
  ], "a thrown error: Fastify logs it once at error (3); the 500's completion stays at info")
  t.match(boom[1], { ERR_TYPE: 'Error', ERR_MESSAGE: 'db down', ERR_CODE: 'E_DB', RES: '{"statusCode":500}' })
  const stack = String(boom[1]?.ERR_STACK)
  t.match(stack, /^Error: db down\n\s+at .*journal\.test\.ts/, 'the stack, newlines included, in one field')
  t.ok(stack.split('\n').length > 3, 'a multi-line stack')
  t.equal(all.filter((e) => e.ERR_STACK !== undefined).length, 1, 'one entry carries it')

  const missing = await journald.entries([`REQ_ID=${missingId}`])
  t.same(missing.map((e) => [e.MESSAGE, e.PRIORITY]), [
    ['incoming request', '6'],
    ['Route GET:/missing not found', '6'],
    ['request completed', '6'],
  ], 'Fastify logs a 404 at info')

  const warning = await journald.entries([`SYSLOG_IDENTIFIER=${identifier}`, '-p', 'warning'])
  t.same(messages(warning), ['low stock', 'db down'], 'journalctl -p warning: the warning and the error only')

  const hostile = await journald.entries([`REQ_ID=${hostileId}`])
  t.equal(hostile[1]?.MESSAGE, 'first line\nsecond line', 'a message with a newline comes back whole, one entry')
  t.equal(hostile[1]?.USER_NAME, 'zoë', "'user.name' → USER_NAME, UTF-8 kept")
  // journalctl -o json prints a value that is not printable UTF-8 as an array of bytes.
  t.same(hostile[1]?.NUL, [...Buffer.from('a\0b')], 'a NUL inside a value arrives byte for byte')
  // pino writes a lone surrogate unescaped; UTF-8 has no encoding for it, so stdout would get U+FFFD as well.
  t.equal(hostile[2]?.MESSAGE, 'lone surrogate \ufffd here', 'a lone surrogate (no valid UTF-8) becomes U+FFFD')
  t.match(hostile[2]?.PINO_LINE, /"msg":"lone surrogate \ufffd here"/, 'in PINO_LINE too: a valid UTF-8 entry')

  // journald goes away mid-run: the next lines go to stdout, counted, one warning; none lost.
  await journald.stop()
  for (const url of ['/ok', '/boom']) await app.inject(url)
  await stream.flush()
  const counters = stream.counters()
  t.match(counters, { sent: 13, queued: 0, fellBackToStdout: 6, dropped: 0 }, JSON.stringify(counters))
  const fellBack = out.map((line) => (JSON.parse(line) as { msg: string }).msg)
  t.same(fellBack, ['incoming request', 'low stock', 'request completed', 'incoming request', 'db down',
    'request completed'], 'on stdout, in order')
  t.equal(warnings.length, 1, `one warning (${warnings.join(', ')})`)
  t.match(warnings[0], /^SDNOTIFY_JOURNAL_(ENOENT|ECONNREFUSED)$/)
})
