// journald's native protocol (systemd.journal-fields(7), sd_journal_sendv(3), "Native Journal Protocol" in
// systemd's docs/JOURNAL_NATIVE_PROTOCOL.md): one datagram per entry, each field either `KEY=value\n` or, for a
// value with a newline or binary data, `KEY\n` + the value's length as a little-endian uint64 + the bytes + `\n`.
import { SdNotifyError } from '../index.js'

/** A value journald stores: text, bytes, or something that prints as text. An array repeats the field. */
export type JournalValue = string | Uint8Array | number | bigint | boolean
export type JournalFields = Record<string, JournalValue | readonly JournalValue[] | undefined>

/** journald ignores longer field names (JOURNAL_FIELD_NAME_MAX in systemd's journal-file.h). */
export const MAX_FIELD_NAME = 64

function invalidField (field: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_FIELD', `sdnotify: journal field ${field} ${rule}`, { field, rule })
}

/** Why journald would refuse this field name (journal_field_valid() in systemd), or undefined if it is valid. */
export function fieldNameProblem (name: string): string | undefined {
  if (name.length === 0) return 'must not be empty'
  if (name.length > MAX_FIELD_NAME) return `is ${name.length} characters long; journald takes at most ${MAX_FIELD_NAME}`
  if (!/^[A-Z0-9_]+$/.test(name)) return 'may contain only upper-case letters A-Z, digits and underscores'
  // Fields starting with '_' are trusted: journald sets them itself and drops client-sent ones.
  if (name[0] === '_') return 'must not start with an underscore (journald reserves those for trusted fields)'
  if (/^[0-9]/.test(name)) return 'must not start with a digit'
  return undefined
}

/**
 * A key turned into a valid field name: camelCase split at the case change (`reqId` → `REQ_ID`), upper-cased,
 * anything outside A-Z0-9_ replaced by `_`, leading underscores dropped, `F_` put before a leading digit (or an
 * empty name), and cut to 64 characters.
 */
export function toFieldName (key: string): string {
  let name = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .replace(/[^A-Z0-9_]+/g, '_')
    .replace(/^_+/, '')
  if (name === '' || /^[0-9]/.test(name)) name = `F_${name}`
  return name.slice(0, MAX_FIELD_NAME)
}

const NEWLINE = 0x0a

function valueBytes (field: string, value: JournalValue): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return Buffer.from(String(value), 'utf8')
  }
  throw invalidField(field, `must be a string, a Buffer, a number, a bigint or a boolean (got ${describe(value)})`)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a nested array'
  return typeof value
}

/**
 * Validates `fields` and encodes them as one native-protocol entry. Undefined values are left out; an array
 * gives the field once per element (journald keeps every value). Throws SdNotifyError
 * (ERR_SDNOTIFY_INVALID_FIELD) naming the field and the rule.
 */
export function encodeJournalEntry (fields: JournalFields): Buffer {
  if (fields === null || typeof fields !== 'object') {
    throw invalidField('(entry)', `must be an object of fields (got ${describe(fields)})`)
  }
  const parts: Buffer[] = []
  for (const [name, raw] of Object.entries(fields)) {
    if (raw === undefined) continue
    const problem = fieldNameProblem(name)
    if (problem) throw invalidField(JSON.stringify(name), problem)
    const values = Array.isArray(raw) ? (raw as readonly JournalValue[]) : [raw as JournalValue]
    for (const value of values) appendField(parts, name, valueBytes(name, value))
  }
  if (parts.length === 0) throw invalidField('(entry)', 'must have at least one field (e.g. MESSAGE)')
  return Buffer.concat(parts)
}

/** Appends one field in the simple form when possible, else length-prefixed (any bytes, newlines included). */
export function appendField (parts: Buffer[], name: string, value: Buffer): void {
  if (value.indexOf(NEWLINE) < 0) {
    parts.push(Buffer.from(`${name}=`, 'latin1'), value, Buffer.from('\n'))
    return
  }
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(value.length))
  parts.push(Buffer.from(`${name}\n`, 'latin1'), length, value, Buffer.from('\n'))
}

/** toFieldName()'s answers, kept: a logger repeats the same few keys on every line. */
const fieldNames = new Map<string, string>()
const MAX_CACHED_NAMES = 1024
const MAX_CACHED_KEY = 256

/** toFieldName(key), from a bounded cache (an application logging ever new keys makes it start over). */
export function cachedFieldName (key: string): string {
  let name = fieldNames.get(key)
  if (name === undefined) {
    name = toFieldName(key)
    if (key.length <= MAX_CACHED_KEY) {
      if (fieldNames.size >= MAX_CACHED_NAMES) fieldNames.clear()
      fieldNames.set(key, name)
    }
  }
  return name
}

/**
 * One entry of text fields, encoded as appendField() would, with few allocations: while no value has a newline
 * (a JSON line never has one), the entry is one string of `KEY=value\n` lines, converted to UTF-8 once; from the
 * first value with a newline on, fields are appended as bytes. Names and separators are ASCII, so a lone
 * surrogate at a value's edge never pairs with its neighbour: the bytes are those of a field-by-field conversion.
 */
export class TextEntry {
  private text = ''
  private parts: Buffer[] | undefined

  add (name: string, value: string): void {
    if (this.parts === undefined) {
      if (!value.includes('\n')) {
        this.text += `${name}=${value}\n`
        return
      }
      this.parts = [Buffer.from(this.text, 'utf8')]
    }
    appendField(this.parts, name, Buffer.from(value, 'utf8'))
  }

  bytes (): Buffer {
    return this.parts === undefined ? Buffer.from(this.text, 'utf8') : Buffer.concat(this.parts)
  }
}
