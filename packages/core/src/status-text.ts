// Text from errors and user callbacks on its way to STATUS=: the manager takes one line of valid UTF-8
// (sd_notify(3); a newline would start another assignment, a NUL drops the whole datagram), so anything
// else is folded here instead of failing validation and losing the notification it travels with.

// C0 controls (newline, tab, NUL…), DEL, C1 controls, and Unicode's line and paragraph separators.
const CONTROL_RUN =
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  /[ \x00-\x1f\x7f-\x9f\u2028\u2029]*[\x00-\x1f\x7f-\x9f\u2028\u2029][ \x00-\x1f\x7f-\x9f\u2028\u2029]*/g
const ELLIPSIS = '…' // 3 bytes of UTF-8
const UNPRINTABLE = '[unprintable value]'

/**
 * Any value as a valid single-line STATUS= text: control characters (newlines, tabs, NUL, C1) and the
 * spaces around them folded into one space, lone surrogates replaced by U+FFFD, trimmed, cut to
 * `maxBytes` bytes of UTF-8 on a character boundary (ending in '…'), never empty ('-'). Never throws.
 */
export function statusText (text: unknown, maxBytes = 1024): string {
  let value: string
  try {
    value = typeof text === 'string' ? text : String(text)
  } catch {
    value = UNPRINTABLE // a throwing toString(), or an object without one (Object.create(null))
  }
  value = (value as string & { toWellFormed(): string }).toWellFormed().replace(CONTROL_RUN, ' ').trim()
  const limit = Number.isFinite(maxBytes) ? Math.max(4, Math.floor(maxBytes)) : 1024 // room for one character and '…'
  if (Buffer.byteLength(value) > limit) {
    const bytes = Buffer.from(value)
    let end = limit - Buffer.byteLength(ELLIPSIS)
    while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end-- // not inside a multi-byte character
    value = bytes.subarray(0, end).toString('utf8').trimEnd() + ELLIPSIS
  }
  return value === '' ? '-' : value
}

/**
 * What went wrong, as STATUS= text: an Error's message (an AggregateError's message and those of its
 * errors, joined with '; '; `cause` is left out), String(value) for anything else. Never throws.
 */
export function errorText (error: unknown): string {
  return statusText(describe(error, 0))
}

function describe (error: unknown, depth: number): string {
  try {
    if (error === null || typeof error !== 'object') return String(error)
    const { message, name, errors } = error as { message?: unknown; name?: unknown; errors?: unknown }
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- any thrown value: its own toString(), if any
    if (typeof message !== 'string') return String(error)
    const own = message || (typeof name === 'string' && name) || 'Error'
    if (!Array.isArray(errors) || errors.length === 0 || depth > 2) return own
    return [own, ...errors.map((inner) => describe(inner, depth + 1))].join('; ')
  } catch {
    return UNPRINTABLE // a throwing getter or toString(), a revoked Proxy…
  }
}
