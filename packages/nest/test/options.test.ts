// SdNotifyModule's own options (src/options.ts), validated before anything is sent: each bad value throws an
// SdNotifyError naming the option and the rule. options.ts loads no Nest code, so it runs in tap's own process.
import t from 'tap'
import { EXTEND_START_DEFAULTS, validateOptions } from '../src/options.js'

const prefix = '@sdnotify/nest: option '

t.test('each invalid Nest option throws ERR_SDNOTIFY_INVALID_OPTION naming the option and the rule', (t) => {
  const cases: [unknown, string, string][] = [
    [null, 'options', 'must be an object'],
    ['forRoot', 'options', 'must be an object'],
    [{ handleSignals: true }, 'handleSignals', 'is not a module option (a module cannot close its application)'],
    [{ readyOn: 'later' }, 'readyOn', "must be 'auto', 'listen' or 'bootstrap'"],
    [{ fdStore: true, readyOn: 'bootstrap' }, 'fdStore', "needs an HTTP server: readyOn 'auto' or 'listen'"],
    [{ extendStartTimeout: 'yes' }, 'extendStartTimeout', 'must be a boolean or { intervalMs, extendMs, maxMs }'],
    [{ extendStartTimeout: null }, 'extendStartTimeout', 'must be a boolean or { intervalMs, extendMs, maxMs }'],
    [{ extendStartTimeout: 5000 }, 'extendStartTimeout', 'must be a boolean or { intervalMs, extendMs, maxMs }'],
    [{ extendStartTimeout: { everyMs: 1 } }, 'extendStartTimeout.everyMs', 'is unknown (known: intervalMs, extendMs'],
    [{ extendStartTimeout: { intervalMs: 0 } }, 'extendStartTimeout.intervalMs', 'must be a positive number of ms'],
    [{ extendStartTimeout: { intervalMs: '100' } }, 'extendStartTimeout.intervalMs', 'must be a positive number of ms'],
    [{ extendStartTimeout: { extendMs: 2 ** 31 } }, 'extendStartTimeout.extendMs', 'must be a positive number of ms'],
    [{ extendStartTimeout: { maxMs: Number.NaN } }, 'extendStartTimeout.maxMs', 'must be a positive number of ms'],
    // The defaults take part: intervalMs alone above the default extendMs (15 s) is refused as well.
    [{ extendStartTimeout: { intervalMs: 20_000 } }, 'extendStartTimeout.extendMs', 'must be longer than intervalMs'],
    [{ extendStartTimeout: { intervalMs: 500, extendMs: 500 } }, 'extendStartTimeout.extendMs', 'must be longer'],
    [{ warnWithoutShutdownHooks: 'no' }, 'warnWithoutShutdownHooks', 'must be a boolean'],
    [{ warnWithoutShutdownHooks: 0 }, 'warnWithoutShutdownHooks', 'must be a boolean'],
    [{ watchdog: { terminus: () => ({}) } }, 'watchdog.terminus', 'must be an array of health indicator functions'],
    [{ watchdog: { terminus: [() => ({}), 'db'] } }, 'watchdog.terminus', 'must be an array of health indicator'],
  ]
  for (const [options, field, rule] of cases) {
    const error = t.throws(() => validateOptions(options as never), JSON.stringify(options) ?? String(options))
    t.match(error, { name: 'SdNotifyError', code: 'ERR_SDNOTIFY_INVALID_OPTION', field }, `${field}: code and field`)
    t.ok(String((error as Error).message).startsWith(`${prefix}${field} ${rule}`), (error as Error).message)
  }
  t.end()
})

t.test('the shared adapter options are checked with the Nest ones, in the same words', (t) => {
  t.throws(() => validateOptions({ readyon: 'listen' } as never), {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'readyon',
    message: /^@sdnotify\/nest: option readyon is unknown \(known: .*readyOn, extendStartTimeout/,
  }, 'a misspelt option is refused, listing the Nest ones among the known')
  t.throws(() => validateOptions({ shutdownTimeoutMs: -5 }), {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'shutdownTimeoutMs',
    message: /^@sdnotify\/nest: option shutdownTimeoutMs /,
  })
  t.end()
})

t.test('valid options, the documented defaults and every readyOn pass', (t) => {
  const valid = [
    {},
    { readyOn: 'auto' as const },
    { readyOn: 'listen' as const, fdStore: true },
    { readyOn: 'bootstrap' as const, fdStore: false },
    { extendStartTimeout: true },
    { extendStartTimeout: false },
    { extendStartTimeout: { ...EXTEND_START_DEFAULTS } },
    { extendStartTimeout: { intervalMs: 100, extendMs: 1000, maxMs: 250 } },
    { warnWithoutShutdownHooks: false },
    { watchdog: false },
    { watchdog: { terminus: [] } },
    { watchdog: { terminus: [() => ({})] } },
    { handleSignals: false as const },
  ]
  for (const options of valid) t.doesNotThrow(() => validateOptions(options), JSON.stringify(options))
  t.same(EXTEND_START_DEFAULTS, { intervalMs: 5000, extendMs: 15_000, maxMs: 300_000 }, 'the defaults the README gives')
  t.end()
})
