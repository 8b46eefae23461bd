import { spawn } from 'node:child_process'
import t from 'tap'
import { fakeManager } from '@sdnotify/systemd-harness'
import { createNotifier, reportListenError } from '../src/index.js'

const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:80'), { code: 'EADDRINUSE' })
const expected = 'STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:80\nERRNO=98'

t.test('reportListenError: synchronous once the transport is loaded', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.prepare()
  const report = reportListenError(n, inUse)
  t.same(
    (await fake.waitFor(1)).map((m) => m.text),
    [expected],
  )
  await report
  await n.close()
})

t.test('reportListenError: before the transport is loaded, sent as soon as it is', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await reportListenError(n, inUse)
  t.same(
    (await fake.waitFor(1)).map((m) => m.text),
    [expected],
  )
  await n.close()
})

t.test('reportListenError: rejects when it cannot be sent', async (t) => {
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/nonexistent/notify' } })
  await t.rejects(reportListenError(n, inUse), { name: 'SdNotifyError', errno: 'ENOENT' })
  await n.close()
})

t.test('reportListenError: a multi-line error is still sent, as one line', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.prepare()
  const error = Object.assign(new Error('listen EACCES: permission denied\n    at Server.setupListenHandle'), {
    code: 'EACCES',
  })
  await reportListenError(n, error)
  t.same(
    (await fake.waitFor(1)).map((m) => m.text),
    ['STATUS=Failed to listen: listen EACCES: permission denied at Server.setupListenHandle\nERRNO=13'],
  )
  await n.close()
})

// onShutdownSignal exits the process: each case runs in a child (without tap's NODE_OPTIONS hooks, which
// install signal listeners of their own).
const dist = new URL('../dist/esm/index.js', import.meta.url).href
function signalled(body: string): Promise<{ code: number | null; lines: string[] }> {
  const imports = `import { onShutdownSignal } from ${JSON.stringify(dist)}`
  const script = [imports, body, 'setInterval(() => {}, 1000)', "console.log('ready')"].join('\n')
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk
    if (out === 'ready\n') child.kill('SIGTERM')
  })
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, lines: out.trim().split('\n').slice(1) })))
}

t.test('onShutdownSignal: closes, then exits 0 when it is the only listener', async (t) => {
  t.same(await signalled(`onShutdownSignal(true, async () => console.log('closed'))`), { code: 0, lines: ['closed'] })
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
    'not cut off by an exit after our close',
  )
})

t.test('onShutdownSignal: a failed or overlong close exits 1, or sets exitCode when the host decides', async (t) => {
  t.same(await signalled(`onShutdownSignal(true, async () => { throw new Error('x') })`), { code: 1, lines: [] })
  t.same(await signalled(`onShutdownSignal({ timeoutMs: 100 }, () => new Promise(() => {}))`), { code: 1, lines: [] })
  const result = await signalled(`
    onShutdownSignal(true, async () => { throw new Error('x') })
    process.on('SIGTERM', () => setTimeout(() => {
      console.log('exitCode ' + process.exitCode)
      process.exit()
    }, 200))`)
  t.same(result, { code: 1, lines: ['exitCode 1'] })
})
