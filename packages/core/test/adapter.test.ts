import t from 'tap'
import {
  ADAPTER_OPTION_NAMES,
  createNotifier,
  onReloadSignal,
  resolveStatus,
  runReload,
  SdNotifyError,
  validateAdapterOptions,
} from '../src/index.js'
import { validateWatchdogOptions } from '../src/adapter.js'
import { type FakeManager, fakeManager } from '../src/testing.js'

const texts = (messages: readonly { text: string }[]) =>
  messages.map((m) => m.text.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=…'))

/** Every datagram received, once there are at least `count`. */
async function received (fake: FakeManager, count: number) {
  await fake.waitFor(() => fake.datagrams.length >= count)
  return fake.datagrams
}

t.test('validateAdapterOptions: the shared names, rules naming the option, unknown keys rejected', (t) => {
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
      'fdStore',
    ]
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
    fdStore: { name: 'admin' },
    port: 1,
  }
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', ok, ['port']))
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', undefined, []))
  const cases: [unknown, string, RegExp][] = [
    [null, 'options', /^@sdnotify\/x: option options must be an object$/],
    [{ prot: 1 }, 'prot', /^@sdnotify\/x: option prot is unknown \(known: notifier, .*onReload, fdStore, port\)$/],
    [{ notifier: {} }, 'notifier', /must be a Notifier/],
    [{ notifierOptions: 'x' }, 'notifierOptions', /must be an object/],
    [{ readyStatus: 1 }, 'readyStatus', /must be a string or a function/],
    [{ stoppingStatus: null }, 'stoppingStatus', /must be a string or a function/],
    [{ watchdog: 'yes' }, 'watchdog', /must be a boolean or an object/],
    [{ shutdownTimeoutMs: 0 }, 'shutdownTimeoutMs', /must be a positive number of ms/],
    [{ shutdownTimeoutMs: 2 ** 31 }, 'shutdownTimeoutMs', /below 2147478647/],
    [{ onReload: 'reload' }, 'onReload', /must be a function/],
    [
      { handleSignals: { signals: ['SIGHUP'] } },
      'handleSignals.signals',
      /^@sdnotify\/x: option handleSignals\.signals must not include SIGHUP/,
    ],
    [{ handleSignals: 'yes' }, 'handleSignals', /must be a boolean or/],
    [{ fdStore: 'yes' }, 'fdStore', /^@sdnotify\/x: option fdStore must be true, false or \{ name \}$/],
    [{ fdStore: { name: 'a:b' } }, 'fdStore.name', /^@sdnotify\/x: option fdStore\.name \S/],
  ]
  for (const [options, field, message] of cases) {
    t.throws(
      () => validateAdapterOptions('@sdnotify/x', options, ['port']),
      { code: 'ERR_SDNOTIFY_INVALID_OPTION', field, message },
      field
    )
  }
  try {
    validateAdapterOptions('@sdnotify/x', { watchdog: 1 })
  } catch (error) {
    t.ok(error instanceof SdNotifyError)
  }
  t.end()
})

t.test('resolveStatus: string, callback, throwing callback, odd results: always one valid line', (t) => {
  const errors: unknown[] = []
  const onError = (error: unknown) => errors.push(error)
  const info = { addresses: ['http://127.0.0.1:3000'] }
  t.equal(resolveStatus(undefined, info, 'Listening on x', onError), 'Listening on x')
  t.equal(resolveStatus('Up', info, 'fallback', onError), 'Up')
  t.equal(resolveStatus('two\nlines', info, 'fallback', onError), 'two lines')
  t.equal(
    resolveStatus((i) => `API at ${i.addresses[0]}`, info, 'fallback', onError),
    'API at http://127.0.0.1:3000'
  )
  t.equal(
    resolveStatus(() => 'line one\nline two', info, 'fallback', onError),
    'line one line two'
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
      onError
    ),
    'Listening on x',
    'a throwing callback gives the fallback'
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
      }
    ),
    'fallback',
    'a failing reporter does not throw either'
  )
  t.end()
})

t.test(
  'runReload: RELOADING=1 (MONOTONIC_USEC), the handler, READY=1; failure: READY=1 + ERRNO + one-line status',
  async (t) => {
    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
    t.teardown(() => n.close())
    await n.ready('Listening on http://127.0.0.1:3000')
    let seen: string[] = []
    await runReload(n, async () => {
      seen = texts(await received(fake, 2)) // times out unless RELOADING=1 went out before the handler
    })
    t.same(seen.slice(1), ['RELOADING=1\nMONOTONIC_USEC=…'], 'the handler ran after RELOADING=1 was sent')
    t.same(texts(await received(fake, 3)).slice(1), [
      'RELOADING=1\nMONOTONIC_USEC=…',
      'READY=1\nSTATUS=Listening on http://127.0.0.1:3000',
    ])

    const logged: [string, unknown][] = []
    const failure = new Error('bad config\n  at line 3')
    await runReload(
      n,
      () => Promise.reject(failure),
      (message, error) => logged.push([message, error])
    )
    t.same(texts(await received(fake, 5)).slice(3), [
      'RELOADING=1\nMONOTONIC_USEC=…',
      'READY=1\nSTATUS=Reload failed: bad config at line 3\nERRNO=5',
    ])
    t.same(logged, [['reload failed', failure]], 'the error is logged')

    await runReload(n, () => {
      throw new Error('again')
    })
    t.same(
      texts(await received(fake, 7)).slice(5),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'READY=1\nSTATUS=Reload failed: again\nERRNO=5'],
      'a synchronous throw too'
    )

    await runReload(n, () => undefined)
    t.same(
      texts(await received(fake, 9)).slice(7),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'READY=1\nSTATUS=Listening on http://127.0.0.1:3000\nERRNO=0'],
      'success after failures: the status before them comes back, ERRNO cleared'
    )
    await runReload(n, () => n.status('Config v2'))
    t.same(
      texts(await received(fake, 12)).slice(9),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'STATUS=Config v2', 'READY=1\nSTATUS=Config v2'],
      'a status the handler set stays'
    )
  }
)

t.test(
  'runReload: reloads asked for while one runs are coalesced into one more run; a failing send never rejects',
  async (t) => {
    const fake = await fakeManager()
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
    await received(fake, 1)
    const second = runReload(n, handler)
    const third = runReload(n, handler)
    t.equal(second, third, 'the same pending run')
    release()
    await new Promise((resolve) => setImmediate(resolve))
    await received(fake, 3)
    release()
    await Promise.all([first, second, third])
    t.equal(runs, 2, 'two reloads, not three')
    t.same(texts(await received(fake, 4)), [
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
      (message) => logged.push(message)
    )
    t.ok(ran, 'the handler still runs')
    t.same(logged, ['RELOADING=1 failed', 'READY=1 failed'])
    await broken.close()
  }
)

t.test('onReloadSignal: SIGHUP only under systemd', async (t) => {
  const before = process.listenerCount('SIGHUP')
  t.equal(
    onReloadSignal(createNotifier({ env: {} }), () => undefined),
    undefined,
    'not under systemd: nothing installed'
  )
  t.equal(process.listenerCount('SIGHUP'), before)
  const fake = await fakeManager()
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

t.test('resolveStatus: synchronous; a promise or a non-string result gives the fallback, reported once', async (t) => {
  const info = { addresses: ['http://127.0.0.1:3000'] }
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.removeListener('unhandledRejection', onUnhandled) })
  const cases: [string, () => unknown, RegExp][] = [
    ['an async callback that rejects', async () => Promise.reject(new Error('async failure')), /returned a promise/],
    // eslint-disable-next-line @typescript-eslint/require-await -- the case under test: an async callback
    ['an async callback that throws', async () => { throw new Error('async throw') }, /returned a promise/],
    // eslint-disable-next-line @typescript-eslint/require-await -- the case under test: an async callback
    ['an async callback that resolves', async () => 'Up', /returned a promise/],
    ['a thenable', () => ({ then: (_: unknown, reject: (e: Error) => void) => reject(new Error('x')) }), /promise/],
    ['a number', () => 42, /returned a number, not a string/],
    ['undefined', () => undefined, /returned undefined, not a string/],
    ['an object', () => ({ status: 'Up' }), /returned an object, not a string/],
  ]
  for (const [label, callback, message] of cases) {
    const errors: unknown[] = []
    const status = resolveStatus(callback as unknown as () => string, info, 'Listening on x', (e) => errors.push(e))
    t.equal(status, 'Listening on x', `${label}: the fallback`)
    t.equal(errors.length, 1, `${label}: reported once`)
    t.ok(errors[0] instanceof SdNotifyError, `${label}: an SdNotifyError`)
    t.match((errors[0] as Error).message, message, label)
  }
  // Rejections surface as unhandledRejection after a macrotask turn.
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(unhandled, [], 'no unhandled rejection, ever')
})

t.test('validateAdapterOptions: timeouts must fit a Node.js timer with the 5 s exit margin', (t) => {
  const max = 2 ** 31 - 1 - 5000
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', { shutdownTimeoutMs: max - 1 }))
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', { handleSignals: { timeoutMs: max - 1 } }))
  for (const value of [max, 2 ** 31 - 1, Infinity, Number.NaN]) {
    t.throws(
      () => validateAdapterOptions('@sdnotify/x', { shutdownTimeoutMs: value }),
      {
        code: 'ERR_SDNOTIFY_INVALID_OPTION',
        field: 'shutdownTimeoutMs',
        message: /^@sdnotify\/x: option shutdownTimeoutMs must be a positive number of ms below 2147478647/,
      },
      `shutdownTimeoutMs ${value}`
    )
    t.throws(
      () => validateAdapterOptions('@sdnotify/x', { handleSignals: { timeoutMs: value } }),
      {
        code: 'ERR_SDNOTIFY_INVALID_OPTION',
        field: 'handleSignals.timeoutMs',
        message: /^@sdnotify\/x: option handleSignals\.timeoutMs must be a positive number of ms below 2147478647/,
      },
      `handleSignals.timeoutMs ${value}`
    )
  }
  t.end()
})

t.test('validateAdapterOptions: watchdog options checked up front, unknown keys rejected', (t) => {
  const ok = {
    pingIntervalMs: 100,
    maxEventLoopDelayMs: false,
    healthCheck: () => true,
    healthCheckTimeoutMs: 20,
    onUnhealthy: () => undefined,
    reportStatus: false,
  }
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', { watchdog: ok }))
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', { watchdog: { maxEventLoopDelayMs: 50 } }))
  t.doesNotThrow(() => validateAdapterOptions('@sdnotify/x', { watchdog: true }))
  t.doesNotThrow(
    () => validateAdapterOptions('@sdnotify/x', { watchdog: { terminus: [] } }, ['watchdog.terminus']),
    "an adapter's own watchdog key, declared as 'watchdog.<key>'"
  )
  t.throws(
    () => validateAdapterOptions('@sdnotify/nest', { watchdog: { terminus: [] } }, ['readyOn']),
    { name: 'SdNotifyError', field: 'watchdog.terminus', message: /is unknown/ },
    'an undeclared watchdog key is refused, whichever the adapter'
  )
  t.throws(
    () => validateAdapterOptions('@sdnotify/x', { 'watchdog.terminus': [] }, ['watchdog.terminus']),
    { field: 'watchdog.terminus', message: /is unknown \(known: notifier, .*fdStore\)$/ },
    'a declared watchdog key is not a top-level option'
  )
  const cases: [unknown, string, RegExp][] = [
    [
      { healthcheck: () => true },
      'watchdog.healthcheck',
      new RegExp(
        '^@sdnotify/x: option watchdog\\.healthcheck is unknown \\(known: pingIntervalMs, maxEventLoopDelayMs, ' +
          'healthCheck, healthCheckTimeoutMs, onUnhealthy, reportStatus\\)$'
      ),
    ],
    [{ terminus: [] }, 'watchdog.terminus', /is unknown/],
    [{ pingIntervalMs: '100' }, 'watchdog.pingIntervalMs', /must be a positive number of ms below 2\^31/],
    [{ pingIntervalMs: 0 }, 'watchdog.pingIntervalMs', /must be a positive number of ms/],
    [{ pingIntervalMs: 2 ** 31 }, 'watchdog.pingIntervalMs', /below 2\^31/],
    [{ maxEventLoopDelayMs: true }, 'watchdog.maxEventLoopDelayMs', /must be false or a positive number of ms/],
    [{ healthCheck: 'db' }, 'watchdog.healthCheck', /must be a function/],
    [{ healthCheckTimeoutMs: -1 }, 'watchdog.healthCheckTimeoutMs', /must be a positive number of ms/],
    [{ onUnhealthy: {} }, 'watchdog.onUnhealthy', /must be a function/],
    [{ reportStatus: 'yes' }, 'watchdog.reportStatus', /must be a boolean/],
  ]
  for (const [watchdog, field, message] of cases) {
    t.throws(
      () => validateAdapterOptions('@sdnotify/x', { watchdog }),
      { code: 'ERR_SDNOTIFY_INVALID_OPTION', field, message },
      field
    )
  }
  t.throws(
    () => validateWatchdogOptions('watchdog', { healthcheck: 1 }, []),
    {
      code: 'ERR_SDNOTIFY_INVALID_OPTION',
      field: 'watchdog.healthcheck',
      message: /^sdnotify: option watchdog\.healthcheck is unknown/,
    },
    'validateWatchdogOptions on its own'
  )
  t.doesNotThrow(() => validateWatchdogOptions('watchdog', { terminus: [] }, ['terminus']))
  t.doesNotThrow(() => validateWatchdogOptions('watchdog', undefined, []))
  t.end()
})

t.test('a reload running when the stop begins sends no READY=1 or STATUS= after STOPPING=1', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  t.teardown(() => n.close())
  await n.ready('Listening on http://127.0.0.1:3000')
  await received(fake, 1)
  for (const outcome of ['ok', 'fail'] as const) {
    let release: () => void = () => {}
    let running: Promise<void> | undefined
    let calls = 0
    const logged: string[] = []
    const gate = new Promise<void>((resolve, reject) => {
      release = () => (outcome === 'ok' ? resolve() : reject(new Error('bad config')))
    })
    // Only the first run waits for the gate (a second run, which must not happen, would not hang the test).
    const handler = () => (++calls === 1 ? gate : undefined)
    const remove = onReloadSignal(n, () => (running = runReload(n, handler, (message) => logged.push(message))))
    const before = fake.datagrams.length
    process.emit('SIGHUP', 'SIGHUP')
    await received(fake, before + 1) // RELOADING=1
    process.emit('SIGHUP', 'SIGHUP') // coalesced: would run once more after this one
    // The adapter's stop: the reload signal goes, then STOPPING=1.
    remove?.()
    await n.stopping('Shutting down')
    release()
    await running
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.same(
      texts(fake.datagrams.slice(before)),
      ['RELOADING=1\nMONOTONIC_USEC=…', 'STOPPING=1\nSTATUS=Shutting down'],
      `${outcome}: nothing after STOPPING=1, and no second run`
    )
    t.equal(calls, 1, `${outcome}: the coalesced reload did not run after the stop began`)
    if (outcome === 'fail') t.same(logged, ['reload failed'], 'the failure is still logged')
  }
  // Installed again (a new app on the same notifier): reloads work again.
  let ran = false
  let running: Promise<void> | undefined
  const remove = onReloadSignal(n, () => (running = runReload(n, () => { ran = true })))
  const before = fake.datagrams.length
  process.emit('SIGHUP', 'SIGHUP')
  await running
  remove?.()
  t.ok(ran, 'the handler ran')
  t.same(texts(await received(fake, before + 2)).slice(before), [
    'RELOADING=1\nMONOTONIC_USEC=…',
    'READY=1\nSTATUS=Shutting down',
  ])
})
