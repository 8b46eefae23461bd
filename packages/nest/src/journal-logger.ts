// A Nest LoggerService writing journald's native entries through core's journalStream(): each call becomes one
// entry with PRIORITY from the method, NEST_CONTEXT from the context, and ERR_STACK for a stack trace, so that
// `journalctl -u api -p warning` and `journalctl -u api NEST_CONTEXT=UsersService` work. Not on the journal (a
// terminal, `node dist/main.js`), it hands every call to a fallback logger, Nest's ConsoleLogger by default.
import { ConsoleLogger, type LoggerService, type LogLevel } from '@nestjs/common'
import { journalStream, type JournalStream, type JournalStreamOptions } from '@sdnotify/core/journal'

export interface JournalLoggerOptions extends JournalStreamOptions {
  /** The logger used when the journal is not the target (`target` 'stdout', or 'auto' outside the journal). */
  fallback?: LoggerService
  /** Levels to log; default all. `app.useLogger()` callers may also use setLogLevels(). */
  logLevels?: LogLevel[]
}

/** pino's numbers for Nest's levels: core maps them to syslog priorities (verbose/debug 7, log 6, warn 4…). */
const LEVELS: Record<LogLevel, number> = { verbose: 10, debug: 20, log: 30, warn: 40, error: 50, fatal: 60 }

/** What ConsoleLogger takes for a stack trace among error()'s parameters. */
const STACK = /^(.)+\n\s+at .+:\d+:\d+/

// Nest's order of levels. A level is on when listed or above the highest listed one (['error', 'warn'] lets fatal
// through), as Nest's own loggers decide (isLogLevelEnabled, @nestjs/common/services/utils: not a public export).
const LEVEL_ORDER: readonly LogLevel[] = ['verbose', 'debug', 'log', 'warn', 'error', 'fatal']

function levelEnabled (level: LogLevel, levels: ReadonlySet<LogLevel>): boolean {
  if (levels.has(level)) return true
  if (levels.size === 0) return false
  const highest = Math.max(...[...levels].map((listed) => LEVEL_ORDER.indexOf(listed)))
  return LEVEL_ORDER.indexOf(level) >= highest
}

export class JournalLogger implements LoggerService {
  /** The journal stream (its `counters()` say what was sent, queued or written to stdout instead). */
  readonly stream: JournalStream
  /** The logger in use when not on the journal, else undefined. */
  readonly fallback: LoggerService | undefined
  private levels: Set<LogLevel> | undefined

  constructor (options: JournalLoggerOptions = {}) {
    const { fallback, logLevels, ...streamOptions } = options
    this.stream = journalStream(streamOptions)
    this.fallback = this.stream.target === 'journal' ? undefined : (fallback ?? new ConsoleLogger())
    this.levels = logLevels && new Set(logLevels)
  }

  log (message: unknown, ...optionalParams: unknown[]): void {
    this.write('log', message, optionalParams)
  }

  error (message: unknown, ...optionalParams: unknown[]): void {
    this.write('error', message, optionalParams)
  }

  warn (message: unknown, ...optionalParams: unknown[]): void {
    this.write('warn', message, optionalParams)
  }

  debug (message: unknown, ...optionalParams: unknown[]): void {
    this.write('debug', message, optionalParams)
  }

  verbose (message: unknown, ...optionalParams: unknown[]): void {
    this.write('verbose', message, optionalParams)
  }

  fatal (message: unknown, ...optionalParams: unknown[]): void {
    this.write('fatal', message, optionalParams)
  }

  setLogLevels (levels: LogLevel[]): void {
    this.levels = new Set(levels)
    this.fallback?.setLogLevels?.(levels)
  }

  /** Resolves once every entry logged so far reached journald (or stdout). */
  flush (): Promise<void> {
    return this.stream.flush()
  }

  private write (level: LogLevel, message: unknown, params: unknown[]): void {
    // logLevels and setLogLevels() hold on either target: the fallback's own levels may only filter further.
    if (this.levels && !levelEnabled(level, this.levels)) return
    if (this.fallback) {
      this.fallback[level]?.(message, ...params)
      return
    }
    const record: Record<string, unknown> = { level: LEVELS[level], time: Date.now() }
    const rest = [...params]
    // Nest passes the context last (a Logger created with one always does).
    const last = rest[rest.length - 1]
    const context = typeof last === 'string' && !(level === 'error' && rest.length === 1 && STACK.test(last))
    if (context) record.nestContext = rest.pop()
    if (message instanceof Error) {
      record.msg = message.message
      record.err = { type: message.name, message: message.message, stack: message.stack }
    } else {
      record.msg = typeof message === 'string' ? message : json(message)
    }
    // error(message, stack, context): the stack trace Nest (or the application) passed along.
    const stack = level === 'error' && typeof rest[0] === 'string' && STACK.test(rest[0]) ? rest.shift() : undefined
    if (stack !== undefined) record.err = { type: 'Error', message: record.msg, stack }
    if (rest.length > 0) record.nestParams = rest.map(json)
    this.stream.write(`${JSON.stringify(record)}\n`)
  }
}

/** JSON for a value, or its String() when it has none (a cycle, a bigint): logging must never throw. */
function json (value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
