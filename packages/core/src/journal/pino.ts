// One pino JSON line → the fields of one journal entry.
import { cachedFieldName, TextEntry } from './fields.js'

/** syslog priorities (syslog(3)), which journald's PRIORITY= takes: 0 emerg … 7 debug. */
const LABEL_PRIORITY: Record<string, number> = {
  emerg: 0,
  alert: 1,
  crit: 2,
  critical: 2,
  fatal: 2,
  error: 3,
  err: 3,
  warn: 4,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
  trace: 7,
}

/**
 * pino's numeric levels (trace 10, debug 20, info 30, warn 40, error 50, fatal 60) as syslog priorities. A
 * custom level falls in with the standard level at or below it, except that anything strictly between info and
 * warn is notice (5): `notice: 35` is what such a level usually means.
 */
export function levelPriority (level: unknown, custom?: Readonly<Record<string, number>>): number {
  const own = custom?.[String(level)]
  if (own !== undefined) return own
  if (typeof level === 'string') return LABEL_PRIORITY[level.toLowerCase()] ?? 6
  if (typeof level !== 'number' || Number.isNaN(level)) return 6
  if (level >= 60) return 2
  if (level >= 50) return 3
  if (level >= 40) return 4
  if (level > 30) return 5
  if (level >= 30) return 6
  return 7
}

export interface LineOptions {
  identifier: string
  /** The field keeping the original line, or false for none. */
  lineField: string | false
  priorities: Readonly<Record<string, number>> | undefined
}

/** Fields this module sets itself: a pino key that converts to one of them is stored as PINO_<NAME> instead. */
const OWN_FIELDS = new Set(['MESSAGE', 'PRIORITY', 'SYSLOG_IDENTIFIER'])

/** A value as text: strings as they are, anything else as JSON (a number that JSON.parse made Infinity: `null`). */
function text (value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value) // what JSON.stringify prints
  return JSON.stringify(value) ?? String(value)
}

/**
 * The encoded entry for one line pino wrote (one JSON object plus a newline). Keys: `msg` → MESSAGE, `level` →
 * PRIORITY, an error object (one with a string `stack`, like pino's `err`) → one field per property (ERR_STACK,
 * ERR_TYPE, ERR_MESSAGE…), anything else → its converted name, objects JSON-encoded. A line that is not a JSON
 * object becomes MESSAGE as it is, at priority info.
 */
export function encodePinoLine (line: string, options: LineOptions): Buffer {
  const trimmed = line.endsWith('\n') ? line.slice(0, -1) : line
  const entry = new TextEntry()
  let record: unknown
  try {
    record = JSON.parse(trimmed)
  } catch {
    record = undefined
  }
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    entry.add('MESSAGE', trimmed)
    entry.add('PRIORITY', '6')
    entry.add('SYSLOG_IDENTIFIER', options.identifier)
    return entry.bytes()
  }
  const object = record as Record<string, unknown>
  const err = object.err
  const message = object.msg ?? (isError(err) ? err.message : undefined)
  entry.add('MESSAGE', message === undefined ? trimmed : text(message))
  entry.add('PRIORITY', String(levelPriority(object.level, options.priorities)))
  entry.add('SYSLOG_IDENTIFIER', options.identifier)
  const lineField = options.lineField
  for (const key of Object.keys(object)) {
    const value = object[key]
    if (key === 'msg' || key === 'level' || value === undefined) continue
    let name = cachedFieldName(key)
    if (OWN_FIELDS.has(name) || name === lineField) name = cachedFieldName(`PINO_${name}`)
    if (isError(value)) {
      for (const property of Object.keys(value)) {
        const inner = value[property]
        if (inner !== undefined) entry.add(cachedFieldName(`${name}_${cachedFieldName(property)}`), text(inner))
      }
    } else {
      entry.add(name, text(value))
    }
  }
  if (lineField) entry.add(lineField, trimmed)
  return entry.bytes()
}

function isError (value: unknown): value is Record<string, unknown> & { message?: unknown } {
  return value !== null && typeof value === 'object' && typeof (value as { stack?: unknown }).stack === 'string'
}
