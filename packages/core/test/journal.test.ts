// @sdnotify/core/journal: the native protocol's encoding and rules, pino lines → entries, and the proof against
// a real systemd-journald in a private mount namespace (harness startJournald). Run under the systemd lock:
// `flock /tmp/sdnotify-systemd.lock npx tap test/journal.test.ts`.
import { execFile } from 'node:child_process'
import { closeSync, fstatSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import pino from 'pino'
import t, { type Test } from 'tap'
import {
  type Journald,
  type JournalEntry,
  journaldSkipReason,
  type Manager,
  startJournald,
  startManager,
  systemdSkipReason,
  coverageEnv,
} from '@sdnotify/systemd-harness'
import { SdNotifyError } from '../src/index.js'
import {
  encodeJournalEntry,
  fieldNameProblem,
  journalStream,
  levelPriority,
  sendJournal,
  stdioIsJournal,
  toFieldName,
} from '../src/journal.js'

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

/** The `key` of a JSON line (pino's output). */
const jsonField = (line: string, key: string): unknown => (JSON.parse(line) as Record<string, unknown>)[key]

/** A stdout stand-in that keeps what it is given. */
function capture (): { write(chunk: string): boolean; lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    write: (chunk: string) => {
      lines.push(chunk)
      return true
    },
  }
}

function invalid (t: Test, fn: () => unknown, field: string, rule: RegExp): void {
  try {
    fn()
    t.fail(`${field}: no error`)
  } catch (error) {
    t.ok(error instanceof SdNotifyError, `${field}: an SdNotifyError`)
    const e = error as SdNotifyError
    t.equal(e.code, 'ERR_SDNOTIFY_INVALID_FIELD')
    t.equal(e.field, field)
    t.match(e.rule, rule)
    t.match(e.message, field)
  }
}

t.test('encodeJournalEntry: KEY=value, or KEY\\n<u64 LE length><bytes>\\n for newlines and binary data', (t) => {
  const entry = encodeJournalEntry({ MESSAGE: 'hi', MULTI: 'a\nb', BIN: Buffer.from([0, 0x0a]), N: 3, SKIP: undefined })
  const expected = Buffer.concat([
    Buffer.from('MESSAGE=hi\nMULTI\n'),
    Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from('a\nb\nBIN\n'),
    Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a]),
    Buffer.from('\nN=3\n'),
  ])
  t.same(entry, expected)
  t.same(encodeJournalEntry({ TAG: ['a', 'b'] }), Buffer.from('TAG=a\nTAG=b\n'), 'an array repeats the field')
  t.end()
})

t.test('field names break journald rules: SdNotifyError names the field and the rule', (t) => {
  invalid(t, () => encodeJournalEntry({ message: 'x' }), '"message"', /upper-case/)
  invalid(t, () => encodeJournalEntry({ _PID: '1' }), '"_PID"', /underscore/)
  invalid(t, () => encodeJournalEntry({ '1ABC': 'x' }), '"1ABC"', /digit/)
  invalid(t, () => encodeJournalEntry({ ['A'.repeat(65)]: 'x' }), `"${'A'.repeat(65)}"`, /at most 64/)
  invalid(t, () => encodeJournalEntry({ '': 'x' }), '""', /empty/)
  invalid(t, () => encodeJournalEntry({ DATA: { a: 1 } as never }), 'DATA', /string, a Buffer/)
  invalid(t, () => encodeJournalEntry({}), '(entry)', /at least one field/)
  t.equal(fieldNameProblem('A'.repeat(64)), undefined, '64 characters are allowed')
  t.end()
})

t.test('toFieldName: any key becomes a name journald accepts', (t) => {
  t.equal(toFieldName('reqId'), 'REQ_ID')
  t.equal(toFieldName('http.status'), 'HTTP_STATUS')
  t.equal(toFieldName('_private'), 'PRIVATE')
  t.equal(toFieldName('2fa'), 'F_2FA')
  t.equal(toFieldName('é'), 'F_')
  t.equal(toFieldName('x'.repeat(100)).length, 64)
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (key) => fieldNameProblem(toFieldName(key)) === undefined))
  t.end()
})

t.test('levelPriority: pino levels → syslog priorities, custom levels in between', (t) => {
  const cases: [unknown, number][] = [
    [10, 7], [20, 7], [30, 6], [35, 5], [40, 4], [45, 4], [50, 3], [60, 2], [100, 2], [5, 7],
    ['trace', 7], ['debug', 7], ['info', 6], ['notice', 5], ['warn', 4], ['error', 3], ['fatal', 2], ['odd', 6],
  ]
  for (const [level, priority] of cases) t.equal(levelPriority(level), priority, `level ${String(level)}`)
  t.equal(levelPriority(45, { 45: 5 }), 5, 'an explicit mapping wins')
  t.equal(levelPriority('audit', { audit: 1 }), 1)
  t.end()
})

t.test('stdioIsJournal compares $JOURNAL_STREAM with the descriptors (device:inode)', (t) => {
  const fd = openSync(join(tmpdir(), `sdnotify-journal-${process.pid}`), 'w')
  t.teardown(() => closeSync(fd))
  const stat = fstatSync(fd, { bigint: true })
  t.equal(stdioIsJournal({ JOURNAL_STREAM: `${stat.dev}:${stat.ino}` }, [fd]), true)
  t.equal(stdioIsJournal({ JOURNAL_STREAM: `${stat.dev}:${stat.ino + 1n}` }, [fd]), false, 'another inode')
  t.equal(stdioIsJournal({ JOURNAL_STREAM: 'garbage' }, [fd]), false)
  t.equal(stdioIsJournal({}, [fd]), false)
  t.end()
})

t.test('journalStream options are validated', (t) => {
  const code = { code: 'ERR_SDNOTIFY_INVALID_OPTION' }
  t.throws(() => journalStream({ target: 'syslog' as never }), { ...code, field: 'target' })
  t.throws(() => journalStream({ lineField: 'line' }), { ...code, field: 'lineField' })
  t.throws(() => journalStream({ priorities: { notice: 9 } }), { ...code, field: 'priorities.notice' })
  t.throws(() => journalStream({ maxQueueBytes: -1 }), { ...code, field: 'maxQueueBytes' })
  t.throws(() => journalStream({ identifier: '' }), { ...code, field: 'identifier' })
  t.end()
})

t.test("target 'auto' without $JOURNAL_STREAM, and 'stdout': plain lines, unchanged", (t) => {
  for (const target of ['auto', 'stdout'] as const) {
    const out = capture()
    const stream = journalStream({ target, stdout: out, env: {} })
    t.equal(stream.target, 'stdout')
    pino({ base: undefined, timestamp: false }, stream).info({ reqId: 'a' }, 'hello')
    t.same(out.lines, ['{"level":30,"reqId":"a","msg":"hello"}\n'])
    t.same(stream.counters(), { sent: 0, sentViaMemfd: 0, queued: 0, fellBackToStdout: 1, dropped: 0 })
  }
  t.end()
})

t.test('pino(journalStream()), the one-argument form, writes to the stream (pino checks `writable`)', async (t) => {
  const out = capture()
  const plain = journalStream({ target: 'stdout', stdout: out, env: {} })
  pino(plain).info('one argument')
  t.equal(plain.counters().fellBackToStdout, 1, 'the stdout target got the line')
  const socket = join(tmpdir(), `sdnotify-no-journal-${process.pid}-1arg`)
  const native = journalStream({ target: 'journal', socket, stdout: out, onWarning: () => {} })
  pino(native).info('one argument, native')
  await native.end()
  t.match(native.counters(), { fellBackToStdout: 1 }, "the 'journal' target got it (no journald: stdout)")
  t.same(out.lines.map((line) => jsonField(line, 'msg')), ['one argument', 'one argument, native'])
})

t.test('no journald at the socket: stdout in order, counted, one warning; sendJournal rejects', async (t) => {
  const out = capture()
  const warnings: string[] = []
  const socket = join(tmpdir(), `sdnotify-no-journal-${process.pid}`)
  const stream = journalStream({ target: 'journal', socket, stdout: out, onWarning: (_m, code) => warnings.push(code) })
  const logger = pino({ base: undefined, timestamp: false }, stream)
  for (let i = 0; i < 5; i++) logger.info({ i }, 'line')
  await stream.end()
  t.same(out.lines.map((line) => jsonField(line, 'i')), [0, 1, 2, 3, 4])
  t.same(stream.counters(), { sent: 0, sentViaMemfd: 0, queued: 0, fellBackToStdout: 5, dropped: 0 })
  t.same(warnings, ['SDNOTIFY_JOURNAL_ENOENT'])
  await t.rejects(sendJournal({ MESSAGE: 'x' }, { socket }), { code: 'ERR_SDNOTIFY_SEND_FAILED', errno: 'ENOENT' })
  await t.rejects(sendJournal({ message: 'x' }, { socket }), { code: 'ERR_SDNOTIFY_INVALID_FIELD', field: '"message"' })
})

/** Runs a fixture as a plain child (no journal around it); resolves with its stdout and stderr. */
function runChild (script: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const childEnv = { ...process.env, ...coverageEnv(), ...env }
    delete childEnv.NODE_OPTIONS
    delete childEnv.JOURNAL_STREAM
    execFile(process.execPath, [script], { env: childEnv }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`))
      else resolve({ stdout, stderr })
    })
  })
}

t.test('a process outside the journal keeps printing JSON lines on its stdout (the built package)', async (t) => {
  const auto = await runChild(fixture('journal-stdout.mjs'), {})
  const messages = (stdout: string) => stdout.split('\n').filter(Boolean).map((line) => jsonField(line, 'msg'))
  t.same(messages(auto.stdout), ['first', 'second'])
  const report = (stderr: string): unknown =>
    JSON.parse(stderr.split('\n').find((line) => line.startsWith('{')) ?? 'null')
  t.match(report(auto.stderr), { target: 'stdout', counters: { fellBackToStdout: 2 } })
  const env = { SDN_TARGET: 'journal', SDN_SOCKET: '/nonexistent/journal' }
  const missing = await runChild(fixture('journal-stdout.mjs'), env)
  t.same(messages(missing.stdout), ['first', 'second'])
  t.match(missing.stderr, /SDNOTIFY_JOURNAL_ENOENT/, 'a warning says why')
  t.match(report(missing.stderr), {
    target: 'journal',
    counters: { sent: 0, fellBackToStdout: 2, dropped: 0 },
  })
})

const skip = journaldSkipReason()
if (skip) t.comment(`skipping real-journald tests: ${skip}`)

function text (value: JournalEntry[string] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

t.test('against a real systemd-journald', { skip }, async (t) => {
  const journald: Journald = await startJournald()
  t.teardown(() => journald.stop())
  let run = 0
  /** A stream with its own identifier, so each test reads back only its own entries. */
  const stream = (options: Parameters<typeof journalStream>[0] = {}) => {
    const identifier = `jt${process.pid}-${++run}`
    return { identifier, stream: journalStream({ target: 'journal', socket: journald.socket, identifier, ...options }) }
  }
  const read = (identifier: string, count: number, fields?: string[]) =>
    journald.waitForEntries([`SYSLOG_IDENTIFIER=${identifier}`], count, 20_000, fields)

  t.test('PRIORITY per pino level, custom levels included', async (t) => {
    const { identifier, stream: s } = stream()
    const logger = pino({ level: 'trace', customLevels: { notice: 35 } }, s)
    logger.trace('t')
    logger.debug('d')
    logger.info('i')
    logger.notice('n')
    logger.warn('w')
    logger.error('e')
    logger.fatal('f')
    await s.end()
    const entries = await read(identifier, 7)
    t.same(
      entries.map((e) => [e.MESSAGE, e.PRIORITY]),
      [['t', '7'], ['d', '7'], ['i', '6'], ['n', '5'], ['w', '4'], ['e', '3'], ['f', '2']]
    )
    t.ok(entries.every((e) => e._TRANSPORT === 'journal'), 'native entries (_TRANSPORT=journal)')
    const warnings = await journald.entries([`SYSLOG_IDENTIFIER=${identifier}`, 'PRIORITY=4'])
    t.same(warnings.map((e) => e.MESSAGE), ['w'], 'journalctl PRIORITY=4 finds the warning')
  })

  t.test('top-level keys become fields a query can match; the original line is kept', async (t) => {
    const { identifier, stream: s } = stream()
    const lines: string[] = []
    const tee = {
      write: (line: string) => {
        lines.push(line)
        return s.write(line)
      },
    }
    const logger = pino({ base: { pid: process.pid } }, tee)
    logger.info({ reqId: `req-${identifier}`, user: { id: 7 }, 'http.status': 200, message: 'shadow' }, 'hello')
    logger.info({ reqId: 'other' }, 'not this one')
    await s.end()
    await read(identifier, 2)
    const [entry, ...more] = await journald.entries([`REQ_ID=req-${identifier}`])
    t.same(more, [], 'REQ_ID=… matches one entry')
    t.match(entry, {
      MESSAGE: 'hello',
      PRIORITY: '6',
      SYSLOG_IDENTIFIER: identifier,
      USER: '{"id":7}',
      HTTP_STATUS: '200',
      PID: String(process.pid),
      PINO_MESSAGE: 'shadow',
      PINO_LINE: (lines[0] as string).trimEnd(),
    })
    t.ok(/^\d+$/.test(text(entry?.TIME) ?? ''), 'pino time kept as TIME')
  })

  t.test('an error with a multi-line stack trace is one entry, its properties fields', async (t) => {
    const { identifier, stream: s } = stream()
    const error = Object.assign(new Error('boom'), { code: 'E_BOOM' })
    pino({}, s).error({ err: error }, 'request failed')
    pino({}, s).error(new Error('alone'))
    await s.end()
    const [first, second, ...more] = await read(identifier, 2)
    t.same(more, [])
    t.match(first, { MESSAGE: 'request failed', PRIORITY: '3', ERR_TYPE: 'Error', ERR_MESSAGE: 'boom' })
    t.equal(first?.ERR_CODE, 'E_BOOM', 'custom error properties too')
    t.equal(first?.ERR_STACK, error.stack, 'the stack, newlines included, as one value')
    t.ok((error.stack as string).split('\n').length > 3, 'it is multi-line')
    t.match(second, { MESSAGE: 'alone', PRIORITY: '3', ERR_MESSAGE: 'alone' })
  })

  t.test('1 MB entries go through a sealed memfd (too large for a datagram)', async (t) => {
    const big = 'x'.repeat(1 << 20)
    const { identifier, stream: s } = stream({ lineField: false })
    pino({}, s).info(big)
    await s.end()
    t.match(s.counters(), { sent: 1, sentViaMemfd: 1, fellBackToStdout: 0 })
    const [viaStream] = await read(identifier, 1, ['MESSAGE'])
    t.equal(text(viaStream?.MESSAGE)?.length, big.length, 'the whole message arrived')
    t.equal(viaStream?.MESSAGE, big)
    const direct = `jt${process.pid}-direct`
    const binary = Buffer.from([0, 1, 2, 0x0a, 255])
    const fields = { MESSAGE: `${big}\nsecond line`, SYSLOG_IDENTIFIER: direct, BLOB: binary }
    await sendJournal(fields, { socket: journald.socket })
    const [viaSend] = await read(direct, 1)
    t.equal(viaSend?.MESSAGE, `${big}\nsecond line`, 'sendJournal: 1 MB with a newline')
    t.same(viaSend?.BLOB, [...binary], 'binary data comes back byte for byte')
  })

  t.test('process.exit() right after logging: queued lines go to stdout at exit, not lost', async (t) => {
    const env = { SDN_TARGET: 'journal', SDN_SOCKET: journald.socket, SDN_EXIT: '1' }
    const child = await runChild(fixture('journal-stdout.mjs'), env)
    t.same(child.stdout.split('\n').filter(Boolean).map((line) => jsonField(line, 'msg')), ['first', 'second'])
  })

  t.test('10,000 lines in a burst: none lost, in order', async (t) => {
    const { identifier, stream: s } = stream()
    const logger = pino({}, s)
    for (let i = 0; i < 10_000; i++) logger.info({ seq: i }, `burst ${i}`)
    const during = s.counters()
    t.comment(`right after the burst: ${JSON.stringify(during)} (net.unix.max_dgram_qlen bounds journald's queue)`)
    await s.end()
    t.match(s.counters(), { sent: 10_000, queued: 0, fellBackToStdout: 0, dropped: 0 })
    const entries = await read(identifier, 10_000, ['SEQ'])
    t.equal(entries.length, 10_000)
    const outOfOrder = entries.findIndex((e, i) => e.SEQ !== String(i))
    t.equal(outOfOrder, -1, 'entry i carries SEQ=i')
  })

  t.test('beyond maxQueueBytes lines go to stdout, counted: nothing is lost', async (t) => {
    const out = capture()
    const { identifier, stream: s } = stream({ maxQueueBytes: 4096, stdout: out, onWarning: () => {} })
    const logger = pino({}, s)
    for (let i = 0; i < 200; i++) logger.info({ seq: i }, 'overflow')
    await s.end()
    const counters = s.counters()
    t.ok(counters.fellBackToStdout > 0, `some lines overflowed to stdout (${JSON.stringify(counters)})`)
    t.equal(counters.sent + counters.fellBackToStdout, 200)
    t.equal(counters.dropped, 0)
    const entries = await read(identifier, counters.sent, ['SEQ'])
    t.equal(entries.length, counters.sent, 'journald has every line counted as sent')
    const seen = [...entries.map((e) => Number(e.SEQ)), ...out.lines.map((line) => jsonField(line, 'seq') as number)]
    t.same(seen.sort((a, b) => a - b), [...Array(200).keys()], 'journal + stdout = every line, once')
  })

  t.test('a stalled journald (SIGSTOP): queued lines go to stdout after stallTimeoutMs', async (t) => {
    const out = capture()
    const { identifier, stream: s } = stream({ stallTimeoutMs: 300, stdout: out, onWarning: () => {} })
    const logger = pino({}, s)
    logger.info('warm-up') // loads koffi (if not yet) before journald stops
    await s.flush()
    process.kill(journald.pid, 'SIGSTOP')
    try {
      for (let i = 0; i < 100; i++) logger.info({ seq: i }, 'stalled')
      await s.flush()
    } finally {
      process.kill(journald.pid, 'SIGCONT')
    }
    await s.end()
    const counters = s.counters()
    t.ok(counters.fellBackToStdout > 0, `lines went to stdout (${JSON.stringify(counters)})`)
    t.equal(counters.sent + counters.fellBackToStdout, 101)
    const entries = await read(identifier, counters.sent, ['SEQ', 'MESSAGE'])
    t.equal(entries.length, counters.sent)
    const seen = [...entries.map((e) => e.SEQ), ...out.lines.map((line) => jsonField(line, 'seq'))]
      .filter((x) => x !== undefined)
    t.equal(new Set(seen.map(Number)).size, 100, 'every stalled line is in the journal or on stdout')
  })
})

const managerSkip = skip ?? systemdSkipReason()
t.test("a non-root service with StandardOutput=journal takes the 'auto' path", { skip: managerSkip }, async (t) => {
  const sd: Manager = await startManager()
  // eslint-disable-next-line prefer-const -- the teardown, registered first, must find it unset if the start fails
  let journald: Journald | undefined
  t.teardown(async () => {
    await journald?.stop() // before the manager: it lives in the manager's mount namespace
    await sd.stop()
  })
  journald = await startJournald({ manager: sd })
  const ident = `svc${process.pid}`
  await sd.writeService('journal-app', fixture('journal-service.mjs'), [], {
    service: ['Type=exec', 'StandardOutput=journal', 'StandardError=journal', `SyslogIdentifier=${ident}`]
      .concat(`Environment=SDN_IDENT=${ident}`),
  })
  const start = await sd.systemctl(['start', 'journal-app.service'])
  t.equal(start.code, 0, `started ${start.stderr}`)
  const entries = await journald.waitForEntries([`SYSLOG_IDENTIFIER=${ident}`], 3)
  const plain = entries.find((e) => e._TRANSPORT === 'stdout')
  t.match(plain, { MESSAGE: 'plain stdout line, target=journal', _UID: '65534' }, 'stdout is the journal stream')
  const native = entries.filter((e) => e._TRANSPORT === 'journal')
  t.match(native[0], { MESSAGE: 'from the service', PRIORITY: '4', REQ_ID: 'svc-1', SERVICE: 'journal-fixture' })
  t.equal(native[0]?._UID, '65534', 'sent by the service as nobody')
  t.match(native[1], { MESSAGE: 'it failed', PRIORITY: '3', ERR_MESSAGE: 'service failure' })
  t.match(text(native[1]?.ERR_STACK), /^Error: service failure\n\s+at /, 'the stack trace as one field')
  t.equal(entries.length, 3, 'no JSON line went through the stdout stream')
})
