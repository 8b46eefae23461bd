// The test kit (@sdnotify/core/testing): a notify socket a test owns, as users run it in their own CI.
// Apps under test are real child processes using core's built bundle (what users' apps load).
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import koffi from 'koffi'
import { canConnect, coverageEnv, testPort } from '@sdnotify/systemd-harness'
import { createNotifier, SdNotifyError } from '../src/index.js'
import { fakeManager, parseNotification } from '../src/testing.js'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const repo = join(pkg, '../..')
const dist = join(pkg, 'dist/esm/index.js')

/** A child app: `script` runs with `core` bound to the built @sdnotify/core, tap's hooks kept out (NODE_OPTIONS). */
function app (script: string, env: Record<string, string | undefined>): ChildProcess {
  const code = `const core = require(${JSON.stringify(dist)});\n${script}`
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '-e', code], {
    env: { ...process.env, ...coverageEnv(), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  child.stderr?.setEncoding('utf8')
  return child
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit').then(() => undefined)

// Datagrams core would never send (it validates): straight through sendto(2).
const libc = koffi.load('libc.so.6')
const socketFn = libc.func('int socket(int, int, int)')
const sendto = libc.func('intptr_t sendto(int, const void *, size_t, int, const void *, uint32_t)')
const closeFn = libc.func('int close(int)')
function sendRaw (address: string, message: Buffer): void {
  const fd = socketFn(1, 2, 0) as number
  const path = Buffer.alloc(2 + Buffer.byteLength(address) + 1)
  path.writeUInt16LE(1, 0)
  path.write(address, 2)
  const sent = Number(sendto(fd, message, message.length, 0, path, path.length))
  closeFn(fd)
  if (sent !== message.length) throw new Error(`sendto: ${sent} (errno ${koffi.errno()})`)
}

t.test(
  'env, notifications parsed as systemd reads them, the sender pid, waitFor by values, RegExp, predicate or after',
  async (t) => {
    const manager = await fakeManager()
    t.teardown(() => manager.close())
    t.equal(manager.env.NOTIFY_SOCKET, manager.address)
    t.ok(existsSync(manager.address), 'a socket file in a temporary folder')
    t.notOk('WATCHDOG_USEC' in manager.env && manager.env.WATCHDOG_USEC !== undefined, 'no watchdog unless asked for')
    const child = app(
      `const n = core.createNotifier()
n.status('booting').then(() => n.ready('Listening on http://127.0.0.1:1'))
  .then(() => n.reloading()).then(() => n.ready('again'))`,
      { ...manager.env }
    )
    t.teardown(() => child.kill('SIGKILL'))
    const ready = await manager.waitFor({ READY: '1' })
    t.same(ready, { READY: '1', STATUS: 'Listening on http://127.0.0.1:1' }, 'a plain object of KEY: value')
    t.same(await manager.waitFor({ STATUS: /^Listening on http:\/\/127\.0\.0\.1:\d+$/ }), ready, 'RegExp values')
    const reloading = await manager.waitFor((n) => n.RELOADING === '1' && n.MONOTONIC_USEC !== undefined)
    const second = await manager.waitFor({ READY: '1' }, { after: reloading })
    t.equal(second.STATUS, 'again', 'after: only later notifications')
    t.equal(await manager.waitFor({ STATUS: 'booting' }), manager.notifications[0], 'already received ones count')
    await exited(child)
    t.same(
      manager.datagrams.map((d) => d.text),
      [
        'STATUS=booting',
        'READY=1\nSTATUS=Listening on http://127.0.0.1:1',
        `RELOADING=1\nMONOTONIC_USEC=${reloading.MONOTONIC_USEC}`,
        'READY=1\nSTATUS=again',
      ]
    )
    t.ok(
      manager.datagrams.every((d) => d.pid === child.pid && d.fds === 0 && d.rejected === undefined),
      'sent by the app itself'
    )
    t.same(
      parseNotification('A=1\nA=2\nnot an assignment\n=x\nB='),
      { A: '1', B: '' },
      'the first value of a repeated key, like systemd'
    )
  }
)

t.test('waitFor rejects after timeoutMs, listing what came (and what systemd would have ignored)', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  sendRaw(manager.address, Buffer.from('STATUS=one'))
  sendRaw(manager.address, Buffer.from(`STATUS=${'x'.repeat(5000)}`))
  sendRaw(manager.address, Buffer.from('READY=1\0STATUS=nul'))
  const error = await manager.waitFor({ READY: '1' }, { timeoutMs: 300 }).catch((e: unknown) => e)
  t.ok(error instanceof SdNotifyError, 'an SdNotifyError')
  t.match(error, {
    code: 'ERR_SDNOTIFY_TIMEOUT',
    message:
      new RegExp(
        [
          String.raw`no notification matching \{ READY="1" \} within 300 ms; received 3:\n {2}"STATUS=one"\n`,
          String.raw`.*ignored by systemd: longer than 4096 bytes.*\n`,
          String.raw`.*READY=1\\u0000STATUS=nul.*ignored by systemd: contains a NUL byte`,
        ].join(''),
        's'
      ),
  })
  t.same(manager.notifications, [{ STATUS: 'one' }], 'the ignored datagrams are not notifications')
  t.same(
    manager.datagrams.map((d) => d.rejected),
    [undefined, 'longer than 4096 bytes', 'contains a NUL byte']
  )
  const predicate = await manager
    .waitFor(
      function isReady (n) {
        return n.READY === '1'
      },
      { timeoutMs: 50 }
    )
    .catch((e: Error) => e.message)
  t.match(predicate, /the predicate isReady within 50 ms/)
  const thrown = await manager
    .waitFor(() => {
      throw new Error('boom')
    })
    .catch((e: Error) => e.message)
  t.equal(thrown, 'boom', 'a predicate that throws rejects its own waitFor')
})

t.test('descriptors sent along are counted and closed, not leaked', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  // The descriptors sent are /dev/null: count ours that point there (the child's own pipes come and go).
  const devNull = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/null'
      } catch {
        return false
      }
    }).length
  const before = devNull()
  const child = app(
    `const fs = require('node:fs'); const n = core.createNotifier()
const fds = [fs.openSync('/dev/null', 'r'), fs.openSync('/dev/null', 'r')]
n.storeFds(fds, 'files', { poll: false }).then(() => n.ready())`,
    { ...manager.env }
  )
  t.teardown(() => child.kill('SIGKILL'))
  const store = await manager.waitFor({ FDSTORE: '1' })
  t.same(store, { FDSTORE: '1', FDNAME: 'files', FDPOLL: '0' })
  t.equal(manager.datagrams[0]?.fds, 2, 'two descriptors came with FDSTORE=1')
  await manager.waitFor({ READY: '1' })
  t.equal(devNull(), before, 'and were closed on receipt')
})

t.test('watchdog: WATCHDOG_USEC in env, pings tracked from READY=1, violations recorded or fatal', (t) => {
  t.test('a healthy app pings in time: no violations', async (t) => {
    const manager = await fakeManager({ watchdogMs: 2000, enforceWatchdog: true })
    t.teardown(() => manager.close())
    t.equal(manager.env.WATCHDOG_USEC, '2000000')
    t.equal(manager.env.WATCHDOG_PID, undefined, 'no WATCHDOG_PID: the child pid is not known in advance')
    const child = app(
      'const n = core.createNotifier(); n.ready().then(() => n.watchdog.start()); setInterval(() => {}, 1e6)',
      { ...manager.env }
    )
    t.teardown(() => child.kill('SIGKILL'))
    await manager.waitFor({ READY: '1' })
    const first = await manager.waitFor({ WATCHDOG: '1' })
    await manager.waitFor({ WATCHDOG: '1' }, { after: first })
    t.same(manager.watchdogViolations, [])
  })
  t.test('an app that stops pinging: recorded without enforceWatchdog', async (t) => {
    const manager = await fakeManager({ watchdogUsec: 300_000n })
    t.teardown(() => manager.close())
    const child = app('core.createNotifier().ready(); setInterval(() => {}, 1e6)', { ...manager.env })
    t.teardown(() => child.kill('SIGKILL'))
    await manager.waitFor({ READY: '1' })
    // Nothing else will come: this wait outlives the watchdog timeout, and a violation is only recorded.
    await t.rejects(manager.waitFor({ WATCHDOG: '1' }, { timeoutMs: 1000 }), {
      code: 'ERR_SDNOTIFY_TIMEOUT',
      field: undefined,
    })
    t.equal(manager.watchdogViolations.length, 1, 'one violation per silence')
    t.match(manager.watchdogViolations[0], { kind: 'missed', timeoutMs: 300 })
    t.ok((manager.watchdogViolations[0]?.gapMs ?? 0) > 300, 'the gap exceeds the timeout')
  })
  t.test('enforceWatchdog: a missed ping fails the waitFor, as systemd would kill the service', async (t) => {
    const manager = await fakeManager({ watchdogMs: 300, enforceWatchdog: true })
    t.teardown(() => manager.close())
    const child = app('core.createNotifier().ready(); setInterval(() => {}, 1e6)', { ...manager.env })
    t.teardown(() => child.kill('SIGKILL'))
    t.same(await manager.waitFor({ READY: '1' }), { READY: '1' }, 'found before the violation: resolves')
    await t.rejects(manager.waitFor({ STOPPING: '1' }, { timeoutMs: 10_000 }), {
      code: 'ERR_SDNOTIFY_TIMEOUT',
      field: 'WATCHDOG',
      message: /watchdog: the service sent no WATCHDOG=1 for \d+ ms \(timeout 300 ms\): systemd would have killed it/,
    })
  })
  t.test('WATCHDOG=trigger is a violation at once', async (t) => {
    const manager = await fakeManager({ watchdogMs: 60_000 })
    t.teardown(() => manager.close())
    const child = app('const n = core.createNotifier(); n.ready().then(() => n.watchdog.trigger())', { ...manager.env })
    t.teardown(() => child.kill('SIGKILL'))
    await manager.waitFor({ WATCHDOG: 'trigger' })
    t.match(manager.watchdogViolations, [{ kind: 'trigger', timeoutMs: 60_000 }])
  })
  t.test('STOPPING=1 ends the tracking', async (t) => {
    const manager = await fakeManager({ watchdogMs: 200, enforceWatchdog: true })
    t.teardown(() => manager.close())
    const child = app('const n = core.createNotifier(); n.send({ ready: true, stopping: true })', { ...manager.env })
    t.teardown(() => child.kill('SIGKILL'))
    await manager.waitFor({ STOPPING: '1' })
    await t.rejects(
      manager.waitFor({ WATCHDOG: '1' }, { timeoutMs: 600 }),
      { code: 'ERR_SDNOTIFY_TIMEOUT', field: undefined },
      'a plain timeout, no violation'
    )
    t.same(manager.watchdogViolations, [])
  })
  t.end()
})

t.test('pause(): nothing is read, the kernel queue fills, sends wait; resume(): every one arrives, in ' +
  'order', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const n = createNotifier({ env: { ...manager.env }, sendTimeoutMs: 20_000 })
  t.teardown(() => n.close())
  t.equal(await n.ready(), true)
  await manager.waitFor({ READY: '1' })
  manager.pause()
  // Linux queues max_dgram_qlen + 1 datagrams for a socket nobody reads; the rest wait in the notifier.
  const count = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8')) + 50
  let settled = 0
  const sends = Array.from({ length: count }, (_, i) => n.send({ extra: { X_SEQ: i } }))
  for (const send of sends) void send.finally(() => settled++)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(manager.datagrams.length, 1, 'nothing read while paused')
  t.ok(settled < count, `the kernel queue is full: ${count - settled} sends wait`)
  await t.rejects(manager.waitFor({ X_SEQ: '0' }, { timeoutMs: 50 }), { code: 'ERR_SDNOTIFY_TIMEOUT' }, 'nor found')
  manager.resume()
  t.ok((await Promise.all(sends)).every((sent) => sent === true))
  await manager.waitFor({ X_SEQ: String(count - 1) })
  t.same(
    manager.datagrams.map((d) => d.text),
    ['READY=1', ...Array.from({ length: count }, (_, i) => `X_SEQ=${i}`)]
  )
})

t.test('pause(): silence is not judged while paused, pings are judged by their arrival stamps', async (t) => {
  const manager = await fakeManager({ watchdogMs: 2000, enforceWatchdog: true })
  t.teardown(() => manager.close())
  const n = createNotifier({ env: { ...manager.env } })
  t.teardown(() => n.close())
  await n.ready()
  n.watchdog.start() // a ping every 1000 ms
  const ready = await manager.waitFor({ READY: '1' })
  manager.pause()
  await new Promise((resolve) => setTimeout(resolve, 3000))
  t.same(manager.watchdogViolations, [], 'none while paused, though nothing was read')
  manager.resume()
  const ping = await manager.waitFor({ WATCHDOG: '1' }, { after: ready })
  await manager.waitFor({ WATCHDOG: '1' }, { after: ping })
  t.ok(manager.notifications.length >= 4, 'the pings sent meanwhile arrived')
  t.same(manager.watchdogViolations, [], 'they came in time by the kernel\'s stamps')
})

t.test('bad options name the option and the rule', async (t) => {
  const cases: [unknown, string, RegExp][] = [
    [{ watchdogMs: 0 }, 'watchdogMs', /must be a number of milliseconds, at least 1 \(got 0\)/],
    [{ watchdogUsec: 1.5 }, 'watchdogUsec', /whole number of µs/],
    [{ watchdogMs: 1000, watchdogUsec: 1000000 }, 'watchdogMs', /cannot both be given/],
    [{ enforceWatchdog: true }, 'enforceWatchdog', /needs watchdogMs or watchdogUsec/],
    [{ enforceWatchdog: 'yes', watchdogMs: 5 }, 'enforceWatchdog', /must be true or false/],
    [{ watchdog: 5 }, 'watchdog', /is not an option \(known: watchdogMs, watchdogUsec, enforceWatchdog, abstract\)/],
  ]
  for (const [options, field, message] of cases) {
    await t.rejects(fakeManager(options as never), { code: 'ERR_SDNOTIFY_INVALID_OPTION', field, message }, field)
  }
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  await t.rejects(manager.waitFor({ READY: '1' }, { timeoutMs: -1 }), {
    code: 'ERR_SDNOTIFY_INVALID_OPTION',
    field: 'timeoutMs',
  })
  await t.rejects(manager.waitFor('READY=1' as never), { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'match' })
  const after = { after: { READY: '1' } }
  await t.rejects(manager.waitFor({ READY: '1' }, after), { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'after' })
})

t.test('close(): pending waits reject, the socket and its folder are gone', async (t) => {
  const manager = await fakeManager()
  const pending = manager.waitFor({ READY: '1' })
  await manager.close()
  await t.rejects(pending, { code: 'ERR_SDNOTIFY_CLOSED' })
  t.notOk(existsSync(manager.address))
  await t.rejects(manager.waitFor({ READY: '1' }), { code: 'ERR_SDNOTIFY_CLOSED' })
  await manager.close() // twice is fine
})

t.test('an abstract socket name', async (t) => {
  const manager = await fakeManager({ abstract: true })
  t.teardown(() => manager.close())
  t.match(manager.address, /^@sdnotify-test-/)
  const child = app('core.createNotifier().ready(\'abstract\')', { ...manager.env })
  t.teardown(() => child.kill('SIGKILL'))
  t.same(await manager.waitFor({ READY: '1' }), { READY: '1', STATUS: 'abstract' })
})

t.test("the published entry: @sdnotify/core/testing shares core's module (one SdNotifyError class)", async (t) => {
  const script = `
import('@sdnotify/core/testing').then(async (kit) => {
  const core = await import('@sdnotify/core')
  const manager = await kit.fakeManager()
  const error = await manager.waitFor({ READY: '1' }, { timeoutMs: 10 }).catch((e) => e)
  await manager.close()
  console.log(JSON.stringify({ sameClass: error instanceof core.SdNotifyError, code: error.code }))
})`
  const out = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
    execFile(
      '/usr/bin/env',
      ['-u', 'NODE_OPTIONS', process.execPath, '-e', script],
      { cwd: pkg, encoding: 'utf8', env: { ...process.env, ...coverageEnv() } },
      (_e, stdout, stderr) => resolve({ stdout, stderr })
    )
  })
  t.same(JSON.parse(out.stdout || '{}'), { sameClass: true, code: 'ERR_SDNOTIFY_TIMEOUT' }, out.stderr)
})

let asNobody: string | undefined
if (process.getuid?.() !== 0) asNobody = 'needs root to switch to nobody with setpriv'
else if (!existsSync('/usr/bin/setpriv')) asNobody = 'no /usr/bin/setpriv'
if (asNobody) t.comment(`skipping the non-root test kit run: ${asNobody}`)

t.test('works as a non-root user without systemd (nobody, via setpriv)', { skip: asNobody }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-kit-'))
  chmodSync(dir, 0o755) // nobody reads the script from here
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const script = join(dir, 'kit.mjs')
  const childCode = `require(${JSON.stringify(dist)}).createNotifier().ready('as ' + process.getuid())`
  writeFileSync(
    script,
    `import { spawn } from 'node:child_process'
import { fakeManager } from ${JSON.stringify(join(pkg, 'dist/esm/testing.js'))}
const manager = await fakeManager({ watchdogMs: 5000 })
const env = { ...process.env, ...manager.env }
const child = spawn(process.execPath, ['-e', ${JSON.stringify(childCode)}], { env, stdio: 'inherit' })
const ready = await manager.waitFor({ READY: '1' })
const pid = manager.datagrams[0].pid === child.pid
console.log(JSON.stringify({ ready, uid: process.getuid(), pid, tmp: manager.address.startsWith('/tmp/') }))
await manager.close()
`
  )
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const args = [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '/usr/bin/env',
      '-u',
      'NODE_OPTIONS',
      'TMPDIR=/tmp',
      process.execPath,
      script,
    ]
    execFile('/usr/bin/setpriv', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? 1 : 0, stdout, stderr })
    })
  })
  t.equal(out.code, 0, out.stderr)
  t.same(JSON.parse(out.stdout || '{}'), {
    ready: { READY: '1', STATUS: 'as 65534' },
    uid: 65534,
    pid: true,
    tmp: true,
  })
})

// The README's recipe, against the example apps: READY=1 only once the port accepts, STOPPING=1 on SIGTERM.
const examples: { name: string; script: string; watchdog?: boolean }[] = [
  { name: 'Fastify', script: 'examples/fastify/app.mjs', watchdog: true },
  { name: 'Express', script: 'examples/express/app.mjs' },
  { name: 'NestJS', script: 'examples/nest/dist/main.js' },
]
for (const example of examples) {
  const path = join(repo, example.script)
  const skip = existsSync(path) ? undefined : `${example.script} is not built (pnpm build)`
  if (skip) t.comment(`skipping the ${example.name} example: ${skip}`)
  t.test(`${example.name} example: READY=1 once listening, STOPPING=1 on SIGTERM`, { skip }, async (t) => {
    const manager = await fakeManager(example.watchdog ? { watchdogMs: 2000, enforceWatchdog: true } : {})
    t.teardown(() => manager.close())
    const port = testPort()
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path], {
      cwd: join(path, '..'),
      env: { ...process.env, ...manager.env, PORT: String(port) },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr?.on('data', (chunk) => (stderr += String(chunk)))
    t.teardown(() => child.kill('SIGKILL'))
    const ready = await manager.waitFor({ READY: '1' }, { timeoutMs: 20_000 }).catch((error: Error) => {
      throw new Error(`${error.message}\n${stderr}`)
    })
    t.equal(await canConnect(port), true, 'the port accepts once READY=1 came')
    t.equal(ready.STATUS, `Listening on http://127.0.0.1:${port}`)
    t.equal(
      manager.datagrams.find((d) => d.fields === ready)?.pid,
      child.pid,
      'sent by the main process (NotifyAccess=main)'
    )
    if (example.watchdog) {
      const ping = await manager.waitFor({ WATCHDOG: '1' })
      t.ok(manager.notifications.indexOf(ping) > manager.notifications.indexOf(ready), 'pings after READY=1')
    }
    child.kill('SIGTERM')
    t.match(await manager.waitFor({ STOPPING: '1' }), { STOPPING: '1' }, 'STOPPING=1 on SIGTERM')
    await exited(child)
    t.ok(
      child.exitCode === 0 || child.signalCode === 'SIGTERM',
      `exited (${child.exitCode ?? child.signalCode}) ${stderr}`
    )
    t.same(manager.watchdogViolations, [])
  })
}
