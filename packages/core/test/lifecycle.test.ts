import { spawn } from 'node:child_process'
import t from 'tap'
import { coverageEnv } from '@sdnotify/systemd-harness'
import { createNotifier, reportListenError, validateShutdownSignals } from '../src/index.js'
import { type FakeManager, fakeManager } from '../src/testing.js'

const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:80'), { code: 'EADDRINUSE' })
const expected = 'STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:80\nERRNO=98'
/** Everything received once the ERRNO= came. */
async function received (fake: FakeManager): Promise<string[]> {
  await fake.waitFor({ ERRNO: /^\d+$/ })
  return fake.datagrams.map((d) => d.text)
}

t.test('reportListenError: synchronous once the transport is loaded', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.prepare()
  const report = reportListenError(n, inUse)
  t.same(
    await received(fake),
    [expected]
  )
  await report
  await n.close()
})

t.test('reportListenError: before the transport is loaded, sent as soon as it is', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await reportListenError(n, inUse)
  t.same(
    await received(fake),
    [expected]
  )
  await n.close()
})

t.test('reportListenError: rejects when it cannot be sent', async (t) => {
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/nonexistent/notify' } })
  await t.rejects(reportListenError(n, inUse), { name: 'SdNotifyError', errno: 'ENOENT' })
  await n.close()
})

t.test('reportListenError: a multi-line error is still sent, as one line', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.prepare()
  const error = Object.assign(new Error('listen EACCES: permission denied\n    at Server.setupListenHandle'), {
    code: 'EACCES',
  })
  await reportListenError(n, error)
  t.same(
    await received(fake),
    ['STATUS=Failed to listen: listen EACCES: permission denied at Server.setupListenHandle\nERRNO=13']
  )
  await n.close()
})

// onShutdownSignal exits the process: each case runs in a child (without tap's NODE_OPTIONS hooks, which
// install signal listeners of their own).
const dist = new URL('../dist/esm/index.js', import.meta.url).href
function signalled (body: string): Promise<{ code: number | null; lines: string[] }> {
  const imports = `import { onShutdownSignal } from ${JSON.stringify(dist)}`
  const script = [imports, body, 'setInterval(() => {}, 1000)', "console.log('ready')"].join('\n')
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', script], {
    env: { ...process.env, ...coverageEnv() },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    if (out === 'ready\n') child.kill('SIGTERM')
  })
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, lines: out.trim().split('\n').slice(1) })))
}

t.test('onShutdownSignal: closes, then exits 0 when it is the only listener', async (t) => {
  t.same(await signalled('onShutdownSignal(true, async () => console.log(\'closed\'))'), { code: 0, lines: ['closed'] })
})

t.test('onShutdownSignal: the host has its own SIGTERM listener: close, and the host decides the exit', async (t) => {
  const result = await signalled(`
    onShutdownSignal(true, async () => console.log('closed'))
    process.on('SIGTERM', () => {
      console.log('host handler')
      setTimeout(() => { console.log('host flushed'); process.exit(7) }, 200)
    })`)
  t.same(
    result,
    { code: 7, lines: ['closed', 'host handler', 'host flushed'] },
    'not cut off by an exit after our close'
  )
})

t.test('onShutdownSignal: a failed or overlong close exits 1, or sets exitCode when the host decides', async (t) => {
  t.same(await signalled('onShutdownSignal(true, async () => { throw new Error(\'x\') })'), { code: 1, lines: [] })
  t.same(await signalled('onShutdownSignal({ timeoutMs: 100 }, () => new Promise(() => {}))'), { code: 1, lines: [] })
  const result = await signalled(`
    onShutdownSignal(true, async () => { throw new Error('x') })
    process.on('SIGTERM', () => setTimeout(() => {
      console.log('exitCode ' + process.exitCode)
      process.exit()
    }, 200))`)
  t.same(result, { code: 1, lines: ['exitCode 1'] })
})

t.test('onShutdownSignal: a host that registered with process.once still decides the exit', async (t) => {
  const host = `process.once('SIGTERM', () => {
      console.log('host handler')
      setTimeout(() => { console.log('host flushed'); process.exit(42) }, 300)
    })`
  const before = await signalled(`${host}\n    onShutdownSignal(true, async () => console.log('closed'))`)
  t.same(before, { code: 42, lines: ['closed', 'host handler', 'host flushed'] }, 'registered before ours')
  const after = await signalled(`onShutdownSignal(true, async () => console.log('closed'))\n    ${host}`)
  t.same(after, { code: 42, lines: ['closed', 'host handler', 'host flushed'] }, 'registered after ours')
})

t.test('onShutdownSignal: a timeout beyond a Node.js timer is clamped, not turned into 1 ms', async (t) => {
  // An adapter passes shutdownTimeoutMs + 5000: without the clamp Node fires an overflowing timer after 1 ms.
  const result = await signalled(`onShutdownSignal({ timeoutMs: 2 ** 31 - 1 + 4000 },
      () => new Promise((resolve) => setTimeout(() => { console.log('closed'); resolve() }, 200)))`)
  t.same(result, { code: 0, lines: ['closed'] }, 'the close finished, then exit 0')
})

t.test('validateShutdownSignals: timeoutMs a finite number of ms that fits a timer with the 5 s margin', (t) => {
  t.doesNotThrow(() => validateShutdownSignals({ timeoutMs: 2 ** 31 - 1 - 5001 }))
  for (const timeoutMs of [2 ** 31 - 1 - 5000, Infinity, Number.NaN, 0, '100']) {
    t.throws(
      () => validateShutdownSignals({ timeoutMs }),
      {
        code: 'ERR_SDNOTIFY_INVALID_OPTION',
        field: 'handleSignals.timeoutMs',
        message: /^sdnotify: option handleSignals\.timeoutMs must be a positive number of ms below 2147478647 /,
      },
      String(timeoutMs)
    )
  }
  t.end()
})
