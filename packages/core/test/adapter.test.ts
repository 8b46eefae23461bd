import t from 'tap'
import { fakeManager } from '@sdnotify/systemd-harness'
import {
  ADAPTER_OPTION_NAMES,
  createNotifier,
  onReloadSignal,
  resolveStatus,
  runReload,
  SdNotifyError,
  validateAdapterOptions,
} from '../src/index.js'

const texts = (messages: { text: string }[]) =>
  messages.map((m) => m.text.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=…'))

t.test('validateAdapterOptions: the shared names, rules naming the option, unknown keys rejected', async (t) => {
  t.same(
    [...ADAPTER_OPTION_NAMES],
    [
      'notifier',
      'notifierOptions',
      'readyStatus',
      'stoppingStatus',
      'watchdog',
      'shutdownTimeoutMs',
      'handleSignals',
      'onReload',
    ],
  )
  const ok = {
    notifier: createNotifier({ env: {} }),
    notifierOptions: {},
    readyStatus: (info: { addresses: string[] }) => info.addresses.join(', '),
    stoppingStatus: 'bye',
    watchdog: { pingIntervalMs: 100 },
    shutdownTimeoutMs: 500,
    handleSignals: { signals: ['SIGTERM'] },
    onReload: () => undefined,
    port: 1,
  }
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', ok, ['port']))
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', undefined, []))
  const cases: [unknown, string, RegExp][] = [
    [null, 'options', /^@sdnotify\/x: option options must be an object$/],
    [{ prot: 1 }, 'prot', /^@sdnotify\/x: option prot is unknown \(known: notifier, .*onReload, port\)$/],
    [{ notifier: {} }, 'notifier', /must be a Notifier/],
    [{ notifierOptions: 'x' }, 'notifierOptions', /must be an object/],
    [{ readyStatus: 1 }, 'readyStatus', /must be a string or a function/],
    [{ stoppingStatus: null }, 'stoppingStatus', /must be a string or a function/],
    [{ watchdog: 'yes' }, 'watchdog', /must be a boolean or an object/],
    [{ shutdownTimeoutMs: 0 }, 'shutdownTimeoutMs', /must be a positive number of ms/],
    [{ shutdownTimeoutMs: 2 ** 31 }, 'shutdownTimeoutMs', /below 2\^31/],
    [{ onReload: 'reload' }, 'onReload', /must be a function/],
    [
      { handleSignals: { signals: ['SIGHUP'] } },
      'handleSignals.signals',
      /^@sdnotify\/x: option handleSignals\.signals must not include SIGHUP/,
    ],
    [{ handleSignals: 'yes' }, 'handleSignals', /must be a boolean or/],
  ]
  for (const [options, field, message] of cases) {
    t.throws(
      () => validateAdapterOptions('@sdnotify/x', options, ['port']),
      { code: 'ERR_SDNOTIFY_INVALID_OPTION', field, message },
      field,
    )
  }
  try {
    validateAdapterOptions('@sdnotify/x', { watchdog: 1 })
  } catch (error) {
    t.ok(error instanceof SdNotifyError)
  }
})

t.test('resolveStatus: string, callback, throwing callback, odd results: always one valid line', async (t) => {
  const errors: unknown[] = []
  const onError = (error: unknown) => errors.push(error)
  const info = { addresses: ['http://127.0.0.1:3000'] }
  t.equal(resolveStatus(undefined, info, 'Listening on x', onError), 'Listening on x')
  t.equal(resolveStatus('Up', info, 'fallback', onError), 'Up')
  t.equal(resolveStatus('two\nlines', info, 'fallback', onError), 'two lines')
  t.equal(
    resolveStatus((i) => `API at ${i.addresses[0]}`, info, 'fallback', onError),
    'API at http://127.0.0.1:3000',
  )
  t.equal(
    resolveStatus(() => 'line one\nline two', info, 'fallback', onError),
    'line one line two',
  )
  t.equal(
    resolveStatus(() => 42 as unknown as string, info, 'fallback', onError),
    '42',
    'a non-string result: String(result)',
  )
  t.same(errors, [])
  const boom = new Error('boom')
  t.equal(
    resolveStatus(
      () => {
        throw boom
      },
      info,
      'Listening on x',
      onError,
    ),
    'Listening on x',
    'a throwing callback gives the fallback',
  )
  t.same(errors, [boom], 'and its error is reported')
  t.equal(
    resolveStatus(
      () => {
        throw boom
      },
      info,
      'fallback',
      () => {
        throw new Error('the reporter fails too')
      },
    ),
    'fallback',
    'a failing reporter does not throw either',
  )
})

t.test(
  'runReload: RELOADING=1 (MONOTONIC_USEC), the handler, READY=1; failure: READY=1 + ERRNO + one-line status',
  async (t) => {
    const fake = fakeManager()
    t.teardown(() => fake.close())
    const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
    t.teardown(() => n.close())
    await n.ready('Listening on http://127.0.0.1:3000')
    let seen: string[] = []
    await runReload(n, async () => {
      seen = texts(await fake.waitFor(2)) // times out unless RELOADING=1 went out before the handler
    })
    t.same(seen.slice(1), ['RELOADING=1\nMONOTONIC_USEC=…'], 'the handler ran after RELOADING=1 was sent')
    t.same(texts(await fake.waitFor(3)).slice(1), [
      'RELOADING=1\nMONOTONIC_USEC=…',
      'READY=1\nSTATUS=Listening on http://127.0.0.1:3000',
    ])

    const logged: [string, unknown][] = []
    const failure = new Error('bad config\n  at line 3')
    await runReload(
      n,
      () => Promise.reject(failure),
      (message, error) => logged.push([message, error]),
    )
    t.same(texts(await fake.waitFor(5)).slice(3), [
      'RELOADING=1\nMONOTONIC_USEC=…',
      'READY=1\nSTATUS=Reload failed: bad config at line 3\nERRNO=5',
    ])
    t.same(logged, [['reload failed', failure]], 'the error is logged')

    await runReload(n, () => {
      throw new Error('again')
    })
    t.same(
      texts(await fake.waitFor(7)).slice(5),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'READY=1\nSTATUS=Reload failed: again\nERRNO=5'],
      'a synchronous throw too',
    )

    await runReload(n, () => undefined)
    t.same(
      texts(await fake.waitFor(9)).slice(7),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'READY=1\nSTATUS=Listening on http://127.0.0.1:3000\nERRNO=0'],
      'success after failures: the status before them comes back, ERRNO cleared',
    )
    await runReload(n, () => n.status('Config v2'))
    t.same(
      texts(await fake.waitFor(12)).slice(9),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'STATUS=Config v2', 'READY=1\nSTATUS=Config v2'],
      'a status the handler set stays',
    )
  },
)

t.test(
  'runReload: reloads asked for while one runs are coalesced into one more run; a failing send never rejects',
  async (t) => {
    const fake = fakeManager()
    t.teardown(() => fake.close())
    const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
    t.teardown(() => n.close())
    let runs = 0
    let release: () => void = () => {}
    const handler = () => {
      runs++
      return new Promise<void>((resolve) => (release = resolve))
    }
    const first = runReload(n, handler)
    await fake.waitFor(1)
    const second = runReload(n, handler)
    const third = runReload(n, handler)
    t.equal(second, third, 'the same pending run')
    release()
    await new Promise((resolve) => setImmediate(resolve))
    await fake.waitFor(3)
    release()
    await Promise.all([first, second, third])
    t.equal(runs, 2, 'two reloads, not three')
    t.same(texts(await fake.waitFor(4)), [
      'RELOADING=1\nMONOTONIC_USEC=…',
      'READY=1',
      'RELOADING=1\nMONOTONIC_USEC=…',
      'READY=1',
    ])

    const broken = createNotifier({ env: { NOTIFY_SOCKET: '/nonexistent/notify' } })
    const logged: string[] = []
    let ran = false
    await runReload(
      broken,
      () => (ran = true),
      (message) => logged.push(message),
    )
    t.ok(ran, 'the handler still runs')
    t.same(logged, ['RELOADING=1 failed', 'READY=1 failed'])
    await broken.close()
  },
)

t.test('onReloadSignal: SIGHUP only under systemd', async (t) => {
  const before = process.listenerCount('SIGHUP')
  t.equal(
    onReloadSignal(createNotifier({ env: {} }), () => undefined),
    undefined,
    'not under systemd: nothing installed',
  )
  t.equal(process.listenerCount('SIGHUP'), before)
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  let reloads = 0
  const remove = onReloadSignal(n, () => {
    reloads++
    throw new Error('a throwing reload does not escape the signal handler')
  })
  t.equal(process.listenerCount('SIGHUP'), before + 1)
  process.emit('SIGHUP', 'SIGHUP')
  t.equal(reloads, 1)
  remove?.()
  t.equal(process.listenerCount('SIGHUP'), before, 'removed')
  await n.close()
})
