// The journal encoder's cheap paths against the plain ones: TextEntry (one string, one UTF-8 conversion) against
// appendField() field by field, encodePinoLine() against the straightforward encoding it replaced, the field-name
// cache against toFieldName(), and the connected journal socket reconnecting when its receiver is replaced.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { appendField, cachedFieldName, TextEntry, toFieldName } from '../src/journal/fields.js'
import { JournalSocket } from '../src/journal/native.js'
import { encodePinoLine, type LineOptions, levelPriority } from '../src/journal/pino.js'
import { createReceiver } from '../src/testing/receiver.js'

/** Strings with what the fast path must treat with care: newlines, lone surrogates, NUL, multi-byte characters. */
const tricky = fc
  .array(fc.oneof(fc.string(), fc.constantFrom('\n', '\uD83D', '\uDE00', '😀', 'é', '\u0000', '\r', '=')), {
    maxLength: 8,
  })
  .map((parts) => parts.join(''))

/** Valid field names, as toFieldName() makes them. */
const fieldName = fc.string({ minLength: 1, maxLength: 20 }).map(toFieldName)

t.test('TextEntry: the same bytes as appendField(), field by field, for any text', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fieldName, tricky), { maxLength: 12 }), (fields) => {
      const entry = new TextEntry()
      const parts: Buffer[] = []
      for (const [name, value] of fields) {
        entry.add(name, value)
        appendField(parts, name, Buffer.from(value, 'utf8'))
      }
      return entry.bytes().equals(Buffer.concat(parts))
    }),
    { numRuns: 2000 }
  )
  const entry = new TextEntry()
  entry.add('A', 'x\uD83D')
  entry.add('B', '\uDE00y')
  t.same(entry.bytes(), Buffer.from('A=x\uFFFD\nB=\uFFFDy\n'), 'lone surrogates at the edges stay apart')
  t.end()
})

t.test('cachedFieldName: toFieldName() for every key, past the cache bound and for long keys', (t) => {
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 2500; i++) {
      const key = `key${i}Name`
      if (cachedFieldName(key) !== toFieldName(key)) t.fail(key)
    }
  }
  const long = `a${'bC'.repeat(200)}`
  t.equal(cachedFieldName(long), toFieldName(long))
  t.equal(cachedFieldName(long), toFieldName(long), 'again (not kept)')
  fc.assert(fc.property(tricky, (key) => cachedFieldName(key) === toFieldName(key)))
  t.pass('random keys too')
  t.end()
})

// The encoding as first written, kept here as the specification encodePinoLine() must still meet byte for byte.
const OWN_FIELDS = new Set(['MESSAGE', 'PRIORITY', 'SYSLOG_IDENTIFIER'])
const text = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value)))
const isError = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && typeof (value as { stack?: unknown }).stack === 'string'

function referenceEncode (line: string, options: LineOptions): Buffer {
  const trimmed = line.endsWith('\n') ? line.slice(0, -1) : line
  const parts: Buffer[] = []
  const field = (name: string, value: string) => appendField(parts, name, Buffer.from(value, 'utf8'))
  let record: unknown
  try {
    record = JSON.parse(trimmed)
  } catch {
    record = undefined
  }
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    field('MESSAGE', trimmed)
    field('PRIORITY', '6')
    field('SYSLOG_IDENTIFIER', options.identifier)
    return Buffer.concat(parts)
  }
  const object = record as Record<string, unknown>
  const err = object.err
  const message = object.msg ?? (isError(err) ? err.message : undefined)
  field('MESSAGE', message === undefined ? trimmed : text(message))
  field('PRIORITY', String(levelPriority(object.level, options.priorities)))
  field('SYSLOG_IDENTIFIER', options.identifier)
  const taken = new Set(OWN_FIELDS)
  if (options.lineField) taken.add(options.lineField)
  for (const [key, value] of Object.entries(object)) {
    if (key === 'msg' || key === 'level' || value === undefined) continue
    let name = toFieldName(key)
    if (taken.has(name)) name = toFieldName(`PINO_${name}`)
    if (isError(value)) {
      for (const [property, inner] of Object.entries(value)) {
        if (inner !== undefined) field(toFieldName(`${name}_${toFieldName(property)}`), text(inner))
      }
    } else {
      field(name, text(value))
    }
  }
  if (options.lineField) field(options.lineField, trimmed)
  return Buffer.concat(parts)
}

t.test('encodePinoLine: the same entry as the straightforward encoding, for any line', (t) => {
  const key = fc.oneof(
    fc.constantFrom('msg', 'level', 'err', 'message', 'priority', 'pinoLine', 'PINO_LINE', 'time', 'reqId', 'stack'),
    tricky
  )
  const error = fc.record({ type: fc.string(), message: tricky, stack: tricky, code: fc.jsonValue() })
  const value = fc.oneof(fc.jsonValue(), tricky, error, fc.constantFrom(30, 35, 'warn', 'NOTICE', -0, 1e21, 0.1))
  const record = fc.dictionary(key, value, { maxKeys: 10 })
  const line = fc.oneof(
    record.map((r) => `${JSON.stringify(r)}\n`),
    record.map((r) => JSON.stringify(r, null, 1)), // whitespace and newlines inside the JSON
    fc.constantFrom('{"n":1e400,"m":-1e400,"z":-0,"f":1.50}\n', '{"msg":1e400}', '{"a":1,"a":2}', 'null', '[1]', '3'),
    tricky
  )
  const options = fc.record({
    identifier: fc.constantFrom('app', 'x\ny'),
    lineField: fc.constantFrom<string | false>('PINO_LINE', 'LINE', false),
    priorities: fc.constantFrom(undefined, { notice: 5, 35: 5 }),
  })
  fc.assert(
    fc.property(line, options, (l, o) => encodePinoLine(l, o).equals(referenceEncode(l, o))),
    { numRuns: 3000 }
  )
  t.pass('3000 random lines encoded alike')
  t.end()
})

/** A loaded JournalSocket aimed at a path in a fresh folder; both removed at the end of the test. */
async function journalSocket (t: Test): Promise<{ path: string, socket: JournalSocket }> {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-journal-socket-'))
  const path = join(dir, 'socket')
  const socket = new JournalSocket(path)
  t.teardown(() => {
    socket.close()
    rmSync(dir, { recursive: true, force: true })
  })
  await socket.load()
  return { path, socket }
}

const entry = (message: string) => ({ data: Buffer.from(`MESSAGE=${message}\n`) })

t.test('the journal socket reaches a receiver replaced at the same path', async (t) => {
  const { path, socket } = await journalSocket(t)
  const received = (r: Awaited<ReturnType<typeof createReceiver>>) => r.drain().map((d) => d.bytes.toString())
  t.equal(socket.trySend(entry('none')), 'ENOENT', 'nothing listens yet')

  const first = await createReceiver(path)
  t.equal(socket.trySend(entry('one')), undefined)
  t.equal(socket.trySend(entry('two')), undefined)
  t.same(received(first), ['MESSAGE=one\n', 'MESSAGE=two\n'])
  first.close()
  t.equal(socket.trySend(entry('gone')), 'ECONNREFUSED', 'the receiver closed, its socket file still there')

  rmSync(path)
  const second = await createReceiver(path)
  t.teardown(() => second.close())
  t.equal(socket.trySend(entry('three')), undefined, 'a new receiver at the same path gets the next entry')
  t.same(received(second), ['MESSAGE=three\n'])
  second.close()
  rmSync(path)
  t.equal(socket.trySend(entry('four')), 'ENOENT', 'receiver and file gone: the same error as before connecting')
})

t.test('a receiver replaced at the path while the old one is still open: entries go to the new one', async (t) => {
  const { path, socket } = await journalSocket(t)
  const old = await createReceiver(path)
  t.teardown(() => old.close())
  t.equal(socket.trySend(entry('before')), undefined)
  // journald restarted while something (a leftover process, its socket unit) still holds the old socket open: a
  // socket connected to the old one would keep filling its queue, unread, without an error.
  rmSync(path)
  const fresh = await createReceiver(path)
  t.teardown(() => fresh.close())
  t.equal(socket.trySend(entry('after')), undefined, 'delivered')
  t.same(fresh.drain().map((d) => d.bytes.toString()), ['MESSAGE=after\n'], 'to the new receiver')
  t.same(old.drain().map((d) => d.bytes.toString()), ['MESSAGE=before\n'], 'the old one got only the first')
})
