import t from 'tap'
import { encodeNotification, errorText, statusText } from '../src/index.js'

t.test('statusText: one valid line whatever comes in', (t) => {
  t.equal(
    statusText('bad config\n  at line 3'),
    'bad config at line 3',
    'a newline and the indentation after it: one space'
  )
  t.equal(statusText('a\tb\r\nc\x00d\x7fe\x85f\u2028g'), 'a b c d e f g', 'C0, DEL, C1 and line separators folded')
  t.equal(statusText('keep  two spaces'), 'keep  two spaces', 'plain spaces are the caller’s')
  t.equal(statusText('  \n padded \n '), 'padded', 'trimmed')
  t.equal(statusText('lone \ud800 surrogate'), 'lone \ufffd surrogate', 'a lone surrogate becomes U+FFFD (valid UTF-8)')
  t.equal(statusText(''), '-', 'never empty')
  t.equal(statusText('\n\t'), '-')
  t.equal(statusText(42), '42')
  t.equal(statusText(undefined), 'undefined')
  t.equal(statusText(Symbol('s')), 'Symbol(s)', 'a symbol, which a template literal would throw on')
  t.equal(statusText({ toString: () => 'custom' }), 'custom')
  t.equal(
    statusText({
      toString: () => {
        throw new Error('no')
      },
    }),
    '[unprintable value]',
    'a throwing toString()'
  )
  t.equal(statusText(Object.create(null)), '[unprintable value]', 'no toString at all')
  t.end()
})

t.test('statusText: bounded in bytes of UTF-8, cut on a character boundary with …', (t) => {
  const long = statusText('x'.repeat(5000))
  t.equal(Buffer.byteLength(long), 1024)
  t.ok(long.endsWith('x…'))
  const wide = statusText('é'.repeat(600)) // 2 bytes each
  t.ok(Buffer.byteLength(wide) <= 1024)
  t.notOk(wide.includes('\ufffd'), 'no character cut in half')
  t.equal(statusText('€'.repeat(10), 10), '€€…', 'a 3-byte character that does not fit is left out whole')
  t.equal(statusText('short', 10), 'short')
  t.equal(statusText('x'.repeat(100), 0), 'x…', 'a tiny bound still leaves one character')
  t.equal(Buffer.byteLength(statusText('x'.repeat(2000), Number.NaN)), 1024, 'a bad bound falls back to the default')
  t.end()
})

t.test('statusText: the result always passes STATUS= validation', (t) => {
  const nasty = ['a\nb', '\0', '\ud83d', 'x'.repeat(10_000), '\u0085\u009f', '😀'.repeat(400), '\r', ' ', 'é\n\n\n']
  for (const text of nasty) {
    const status = statusText(text)
    t.doesNotThrow(() => encodeNotification({ status }), JSON.stringify(text.slice(0, 20)))
    t.equal(Buffer.from(status).toString('utf8'), status, 'round-trips through UTF-8')
  }
  t.end()
})

t.test('errorText: the message, AggregateError with its errors, never the cause', (t) => {
  t.equal(
    errorText(new Error('listen EADDRINUSE: address already in use')),
    'listen EADDRINUSE: address already in use'
  )
  t.equal(errorText(new Error('bad config\n  at line 3')), 'bad config at line 3')
  t.equal(errorText(new Error('outer', { cause: new Error('inner') })), 'outer')
  t.equal(
    errorText(new AggregateError([new Error('first\nline'), 'second'], 'all failed')),
    'all failed; first line; second'
  )
  t.equal(
    errorText(new AggregateError([new Error('only')])),
    'AggregateError; only',
    'an empty message names the error'
  )
  t.equal(errorText(new TypeError('')), 'TypeError')
  t.equal(errorText('a string'), 'a string')
  t.equal(errorText(null), 'null')
  t.equal(errorText({ message: 'error-like' }), 'error-like')
  t.equal(
    errorText({
      get message () {
        throw new Error('getter')
      },
    }),
    '[unprintable value]',
    'a throwing getter'
  )
  const revoked = Proxy.revocable({}, {})
  revoked.revoke()
  t.equal(errorText(revoked.proxy), '[unprintable value]', 'a revoked proxy')
  t.end()
})
