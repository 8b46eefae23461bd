import { closeSync, openSync, readdirSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative as pathRelative } from 'node:path'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { createNotifier, SdNotifyError } from '../src/index.js'
import { parseNotifySocket, type UnixAddress } from '../src/address.js'
import { findExecutable } from '../src/select-transport.js'
import { FdTransport } from '../src/transports/fd.js'
import { KoffiTransport } from '../src/transports/koffi.js'
import { F_GETFD, F_SETFD, FD_CLOEXEC, loadLibc } from '../src/transports/libc.js'
import { UnixDgramTransport } from '../src/transports/unix-dgram.js'
import { type FakeManager, fakeManager } from '../src/testing.js'
import { fakeManager as harnessFakeManager } from '@sdnotify/systemd-harness'

const options = { sendTimeoutMs: 5000 }
const texts = (fake: FakeManager) => fake.datagrams.map((d) => d.text)

for (const name of ['koffi', 'unix-dgram'] as const) {
  // prepared: the transport is loaded first, so sends take the synchronous fast path until the queue is
  // full, then the queued, retrying path: order and count must survive the switch.
  for (const prepared of [false, true]) {
    const mode = prepared ? ' (prepared: fast path)' : ''
    t.test(`${name}${mode}: a burst into a full queue is delivered whole and in order`, async (t) => {
      const fake = await fakeManager()
      t.teardown(() => fake.close())
      const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: name })
      if (prepared) t.equal(await n.prepare(), true)
      fake.pause() // the manager is busy: the kernel queue (net.unix.max_dgram_qlen) fills up
      // Not status(): while the manager is busy a newer status-only message supersedes a queued one (notifier.ts).
      const sends = Array.from({ length: 2000 }, (_, i) => n.send({ extra: { X_SEQ: i } }))
      await new Promise((resolve) => setTimeout(resolve, 200))
      fake.resume()
      t.ok((await Promise.all(sends)).every(Boolean))
      await fake.waitFor({ X_SEQ: '1999' })
      t.equal(fake.datagrams.length, 2000, 'nothing was dropped')
      t.ok(fake.datagrams.every((d, i) => d.text === `X_SEQ=${i}`), 'in order')
      t.equal(n.transport, name)
      await n.close()
    })
  }
}

t.test('unix-dgram trySend: true when sent, false (not sent, nothing lost) on a full queue, closes its ' +
  'socket', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const transport = new UnixDgramTransport(parseNotifySocket(fake.address) as UnixAddress, options)
  t.equal(transport.trySend(Buffer.from('STATUS=early')), false, 'not loaded yet: the caller takes the async path')
  await transport.load()
  fake.pause()
  const results: boolean[] = []
  for (let i = 0; i < 100; i++) results.push(transport.trySend(Buffer.from(`STATUS=${i}`)))
  const sent = results.filter(Boolean).length
  t.ok(sent > 0 && sent < 100, `the queue took ${sent}, then said no`)
  t.ok(results.slice(0, sent).every(Boolean) && results.slice(sent).every((r) => !r), 'false only once full')
  t.equal((transport as unknown as { socket: unknown }).socket, undefined, 'socket closed: the process can exit')
  fake.resume()
  await fake.waitFor({ STATUS: String(sent - 1) })
  t.same(texts(fake), results.slice(0, sent).map((_, i) => `STATUS=${i}`))
})

t.test('koffi: a queue that stays full rejects after sendTimeoutMs, naming EAGAIN', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  fake.pause()
  const transport = new KoffiTransport({ address: parseNotifySocket(fake.address) as UnixAddress },
    { sendTimeoutMs: 300 })
  t.teardown(() => transport.close())
  const sends = Array.from({ length: 100 }, () =>
    transport.send(Buffer.from('STATUS=x'))
      .then(() => 'sent', (e: Error & { code?: string; errno?: string }) => `${e.code} ${e.errno}`))
  const results = await Promise.all(sends)
  t.ok(results.includes('sent'), 'the first ones fit in the queue')
  t.ok(results.includes('ERR_SDNOTIFY_TIMEOUT EAGAIN'), 'the rest time out with EAGAIN instead of vanishing')
})

t.test('koffi reaches abstract socket names', async (t) => {
  const fake = await fakeManager({ abstract: true })
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  t.equal(await n.ready('abstract'), true)
  await fake.waitFor({ READY: '1' })
  t.same(texts(fake), ['READY=1\nSTATUS=abstract'])
  await n.close()
})

t.test('unix-dgram refuses abstract names', (t) => {
  t.throws(() => new UnixDgramTransport(parseNotifySocket('@x') as UnixAddress, options),
    { code: 'ERR_SDNOTIFY_UNSUPPORTED' })
  t.end()
})

t.test('unix-dgram closes its socket when idle, so the process can exit', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const transport = new UnixDgramTransport(parseNotifySocket(fake.address) as UnixAddress, options)
  await transport.send(Buffer.from('READY=1'))
  t.equal((transport as unknown as { socket: unknown }).socket, undefined)
  await fake.waitFor({ READY: '1' })
})

t.test('FDSTORE passes descriptors with SCM_RIGHTS', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  const fd = openSync('/dev/null', 'r')
  t.equal(await n.storeFds([fd], 'devnull', { poll: false }), true)
  closeSync(fd)
  await fake.waitFor({ FDSTORE: '1' })
  const [message] = fake.datagrams
  t.equal(message?.text, 'FDSTORE=1\nFDNAME=devnull\nFDPOLL=0')
  t.equal(message?.fds, 1, 'one descriptor arrived')
  await n.close()
})

t.test('unix-dgram hands fd passing to koffi over the same socket', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: 'unix-dgram' })
  await n.ready()
  t.equal(await n.storeFds([0], 'stdin'), true)
  await fake.waitFor({ FDSTORE: '1' })
  t.same(fake.datagrams.map((d) => d.fds), [0, 1], 'the descriptor came with FDSTORE=1')
  t.equal(n.transport, 'unix-dgram')
  await n.close()
})

t.test('barrier: resolves when the manager closes its copy of the pipe, times out until it does', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.status('before')
  // The fake closes the descriptors it reads, as systemd does once it has processed everything before.
  t.equal(await n.barrier(5000), true)
  t.same(texts(fake), ['STATUS=before', 'BARRIER=1'])
  t.equal(fake.datagrams[1]?.fds, 1)

  fake.pause() // a manager that has not read it: the pipe's other end stays open (in the kernel queue)
  await t.rejects(n.barrier(200), { code: 'ERR_SDNOTIFY_TIMEOUT', message: /barrier not acknowledged within 200 ms/ })
  fake.resume()
  await fake.waitFor({ BARRIER: '1' }, { after: fake.notifications[1] })
  await n.close()
})

t.test('fd transport writes to an already-connected descriptor', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  // A connected datagram socket, as OpenFile= would pass: made here with koffi.
  const koffi = (await import('koffi')).default
  const libc = koffi.load('libc.so.6')
  const socket = libc.func('int socket(int, int, int)')
  const connect = libc.func('int connect(int, const void *, uint32_t)')
  const fd = socket(1, 2, 0) as number
  const address = parseNotifySocket(fake.address) as UnixAddress
  t.equal(connect(fd, address.sockaddr, address.sockaddr.length), 0)
  const transport = new FdTransport(fd, options)
  await transport.send(Buffer.from('READY=1\nSTATUS=via fd'))
  await fake.waitFor({ READY: '1' })
  t.same(texts(fake), ['READY=1\nSTATUS=via fd'])
  closeSync(fd)
  await t.rejects(transport.send(Buffer.from('READY=1')),
    { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'fd', errno: 'EBADF' })
})

t.test('exec: spawns systemd-notify with the assignments as arguments, no shell', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-exec-'))
  const fakeNotify = join(dir, 'systemd-notify')
  const record = join(dir, 'args')
  writeFileSync(fakeNotify,
    `#!/bin/sh\nfor a in "$@"; do printf '%s|' "$a"; done > ${record}\necho "$NOTIFY_SOCKET" >> ${record}\n`)
  chmodSync(fakeNotify, 0o755)
  const warnings: string[] = []
  const n = createNotifier({
    env: { NOTIFY_SOCKET: '/run/test/notify' },
    transport: 'exec',
    systemdNotify: fakeNotify,
    onWarning: (_m, code) => warnings.push(code),
  })
  t.equal(await n.ready('a; rm -rf / $(id)'), true)
  const { readFileSync } = await import('node:fs')
  t.equal(readFileSync(record, 'utf8'), 'READY=1|STATUS=a; rm -rf / $(id)|/run/test/notify\n',
    'arguments passed verbatim')
  t.same(warnings, ['SDNOTIFY_EXEC_FALLBACK'], 'warned once about NotifyAccess=all')
  await n.status('again')
  t.same(warnings, ['SDNOTIFY_EXEC_FALLBACK'], 'only once')

  writeFileSync(fakeNotify, '#!/bin/sh\necho "Failed to notify init system: Permission denied" >&2\nexit 1\n')
  await t.rejects(n.status('x'),
    { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'exec', message: /exit status 1.*Permission denied/ })
  // systemd-notify cannot pass descriptors: FDSTORE goes through koffi (installed here) to the same socket.
  await t.rejects(n.storeFds([0], 'x'), { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'koffi', errno: 'ENOENT' })
})

const asRoot = process.getuid?.() === 0 ? false : 'needs root (systemd-notify may fake the sender pid only as root)'
t.test('exec against the real systemd-notify', { skip: asRoot }, async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({
    env: { NOTIFY_SOCKET: fake.address, PATH: '/usr/bin:/bin' },
    transport: 'exec',
    onWarning: () => {},
  })
  const sent = n.ready('from systemd-notify')
  // systemd-notify waits for a BARRIER=1 acknowledgement: the fake closes the pipe on receipt, as systemd does.
  t.equal(await sent, true)
  await fake.waitFor({ BARRIER: '1' })
  t.equal(fake.datagrams[0]?.text, 'READY=1\nSTATUS=from systemd-notify')
  t.equal(fake.datagrams[1]?.text, 'BARRIER=1')
})

t.test('sendSync: last words, synchronously, once prepare() has loaded the transport', async (t) => {
  for (const name of ['koffi', 'unix-dgram'] as const) {
    const fake = await fakeManager()
    t.teardown(() => fake.close())
    const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: name })
    t.throws(() => n.sendSync({ errno: 98 }), { code: 'ERR_SDNOTIFY_UNSUPPORTED', message: /prepare\(\)/ },
      `${name}: not loaded yet`)
    t.equal(await n.prepare(), true)
    t.equal(n.sendSync({ errno: 98, status: 'Failed to listen: EADDRINUSE' }), true, `${name}: sent`)
    t.equal(n.lastStatus, 'Failed to listen: EADDRINUSE')
    await fake.waitFor({ ERRNO: '98' })
    t.same(texts(fake), ['STATUS=Failed to listen: EADDRINUSE\nERRNO=98'])
    t.throws(() => n.sendSync({ status: 'a\nb' }), { name: 'SdNotifyError', field: 'STATUS' })
    await n.close()
    t.throws(() => n.sendSync({ ready: true }), { code: 'ERR_SDNOTIFY_CLOSED' })
  }
  const off = createNotifier({ env: {} })
  t.equal(await off.prepare(), false)
  t.equal(off.sendSync({ ready: true }), false, 'not under systemd: false')
})

t.test('sendSync on the fd and exec transports', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const koffi = (await import('koffi')).default
  const libc = koffi.load('libc.so.6')
  const fd = libc.func('int socket(int, int, int)')(1, 2, 0) as number
  const address = parseNotifySocket(fake.address) as UnixAddress
  libc.func('int connect(int, const void *, uint32_t)')(fd, address.sockaddr, address.sockaddr.length)
  new FdTransport(fd, options).sendSync(Buffer.from('STOPPING=1'))
  await fake.waitFor({ STOPPING: '1' })
  t.same(texts(fake), ['STOPPING=1'])
  closeSync(fd)
  t.throws(() => new FdTransport(fd, options).sendSync(Buffer.from('X=1')), {
    code: 'ERR_SDNOTIFY_SEND_FAILED',
    errno: 'EBADF',
  })

  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-exec-'))
  const script = join(dir, 'systemd-notify')
  writeFileSync(script, `#!/bin/sh\necho "$@" > ${dir}/args\n`)
  chmodSync(script, 0o755)
  const n = createNotifier({
    env: { NOTIFY_SOCKET: '/run/x' },
    transport: 'exec',
    systemdNotify: script,
    onWarning: () => {},
  })
  await n.prepare()
  t.equal(n.sendSync({ errno: 13 }), true)
  const { readFileSync } = await import('node:fs')
  t.equal(readFileSync(join(dir, 'args'), 'utf8'), 'ERRNO=13\n')
})

const openFds = () => readdirSync('/proc/self/fd').length

t.test('failed barriers and sends leave no descriptor open (150 each, counted in /proc/self/fd)', async (t) => {
  const fake = await fakeManager()
  const missing = fake.address
  await fake.close() // the manager is gone: every send fails with ENOENT
  const koffi = createNotifier({ env: { NOTIFY_SOCKET: missing }, transport: 'koffi' })
  const dgram = createNotifier({ env: { NOTIFY_SOCKET: missing }, transport: 'unix-dgram' })
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-exec-'))
  const failing = join(dir, 'systemd-notify')
  writeFileSync(failing, '#!/bin/sh\necho refused >&2\nexit 1\n')
  chmodSync(failing, 0o755)
  const viaExec = { env: { NOTIFY_SOCKET: missing }, transport: 'exec' as const, onWarning: () => {} }
  const exec = createNotifier({ ...viaExec, systemdNotify: failing })
  const unspawnable = join(dir, 'bad-interpreter') // spawn fails with ENOENT: its interpreter does not exist
  writeFileSync(unspawnable, '#!/nonexistent/sh\n')
  chmodSync(unspawnable, 0o755)
  const noExec = createNotifier({ ...viaExec, systemdNotify: unspawnable })
  await koffi.prepare()
  await dgram.prepare()
  await exec.prepare()
  await noExec.prepare()
  await koffi.ready().catch(() => undefined) // opens koffi's one long-lived socket before counting
  await dgram.storeFds([0], 'x').catch(() => undefined) // and the koffi helper of unix-dgram
  const before = openFds()
  const failures: Record<string, number> = {}
  const expectFailure = async (label: string, operation: Promise<unknown>) => {
    const error = await operation.then(() => undefined, (e: unknown) => e)
    if (error instanceof SdNotifyError && error.code === 'ERR_SDNOTIFY_SEND_FAILED') {
      failures[label] = (failures[label] ?? 0) + 1
    }
  }
  for (let i = 0; i < 150; i++) {
    await expectFailure('koffi barrier', koffi.barrier(1000))
    await expectFailure('unix-dgram barrier (through koffi)', dgram.barrier(1000))
    await expectFailure('koffi send', koffi.ready())
    await expectFailure('koffi storeFds', koffi.storeFds([0], 'x'))
    await expectFailure('unix-dgram send (failed connect)', dgram.ready())
    await expectFailure('fd send (EBADF)', new FdTransport(999_999, options).send(Buffer.from('READY=1')))
  }
  for (let i = 0; i < 20; i++) {
    await expectFailure('exec send (exit status 1)', exec.ready())
    await expectFailure('exec send (ENOENT)', noExec.ready())
    try {
      exec.sendSync({ ready: true })
    } catch {
      failures['exec sendSync'] = (failures['exec sendSync'] ?? 0) + 1
    }
  }
  t.same(failures, {
    'koffi barrier': 150,
    'unix-dgram barrier (through koffi)': 150,
    'koffi send': 150,
    'koffi storeFds': 150,
    'unix-dgram send (failed connect)': 150,
    'fd send (EBADF)': 150,
    'exec send (exit status 1)': 20,
    'exec send (ENOENT)': 20,
    'exec sendSync': 20,
  }, 'every operation failed with ERR_SDNOTIFY_SEND_FAILED')
  t.equal(openFds(), before, 'as many descriptors open as before')
  for (const n of [koffi, dgram, exec, noExec]) await n.close()
})

t.test('sends that time out leave no descriptor open', async (t) => {
  const fake = await fakeManager()
  t.teardown(() => fake.close())
  const koffi = new KoffiTransport({ address: parseNotifySocket(fake.address) as UnixAddress }, { sendTimeoutMs: 20 })
  const dgram = new UnixDgramTransport(parseNotifySocket(fake.address) as UnixAddress, { sendTimeoutMs: 20 })
  await koffi.load()
  await dgram.load()
  fake.pause()
  await koffi.send(Buffer.from('STATUS=opens the socket'))
  const before = openFds()
  const outcomes: string[] = []
  for (let i = 0; i < 30; i++) {
    for (const transport of [koffi, dgram]) {
      const failed = (e: SdNotifyError) => outcomes.push(`${transport.name} ${e.code}`)
      await transport.send(Buffer.from('STATUS=x')).then(() => undefined, failed)
    }
  }
  t.ok(outcomes.filter((o) => o === 'koffi ERR_SDNOTIFY_TIMEOUT').length >= 20, 'koffi timed out')
  t.ok(outcomes.filter((o) => o === 'unix-dgram ERR_SDNOTIFY_TIMEOUT').length >= 20, 'unix-dgram timed out')
  t.equal(openFds(), before)
  koffi.close()
  fake.resume()
})

t.test('barriers that time out leave no descriptor open', async (t) => {
  // The harness's fake: it must read each barrier yet hold its pipe past the 5 ms timeout (the kit closes on receipt).
  const fake = harnessFakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.ready()
  await fake.waitFor(1)
  const before = openFds()
  for (let i = 0; i < 20; i++) await t.rejects(n.barrier(5), { code: 'ERR_SDNOTIFY_TIMEOUT' })
  await fake.waitFor(21)
  for (const m of fake.messages) for (const fd of m.fds) fake.closeFd(fd) // the manager's copies
  t.equal(openFds(), before)
  await n.close()
})

/** A connected, blocking datagram socket pair whose reader's queue is already full: a stuck manager. */
async function stuckManager () {
  const koffi = (await import('koffi')).default
  const libc = koffi.load('libc.so.6')
  const socketpair = libc.func('int socketpair(int, int, int, int *)')
  const send = libc.func('intptr_t send(int, const void *, size_t, int)')
  const recv = libc.func('intptr_t recv(int, void *, size_t, int)')
  const MSG_DONTWAIT = 0x40
  const pair = new Int32Array(2)
  if (socketpair(1, 2 | 0o2000000, 0, pair) !== 0) throw new Error(`socketpair failed: errno ${koffi.errno()}`)
  const [writer, reader] = [pair[0] as number, pair[1] as number]
  const filler = Buffer.from('STATUS=filler')
  while (Number(send(writer, filler, filler.length, MSG_DONTWAIT)) > 0) {
    /* fill the queue until EAGAIN */
  }
  const received: string[] = []
  return {
    writer,
    reader,
    received,
    /** The manager reads everything queued (non-blocking). */
    drain () {
      const buffer = Buffer.alloc(256)
      for (let n; (n = Number(recv(reader, buffer, buffer.length, MSG_DONTWAIT))) >= 0;) {
        const text = buffer.subarray(0, n).toString()
        if (text !== 'STATUS=filler') received.push(text)
      }
      return received
    },
    /** Reads until `text` arrives (a write abandoned by a timed-out send completes once there is room). */
    async drainUntil (text: string) {
      for (let i = 0; i < 2000 && !this.drain().includes(text); i++) {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      return received
    },
    close () {
      closeSync(writer)
      closeSync(reader)
    },
  }
}

/** Settles with the promise's outcome, or with `still pending` after 5 s (instead of hanging the test). */
function guarded<T> (promise: Promise<T>): Promise<T | Error | 'still pending'> {
  const guard = new Promise<'still pending'>((resolve) => setTimeout(() => resolve('still pending'), 5000).unref())
  return Promise.race([promise.catch((error: Error) => error), guard])
}

t.test('fd transport: a manager that never reads makes a send reject after sendTimeoutMs, not hang', async (t) => {
  const manager = await stuckManager()
  const transport = new FdTransport(manager.writer, { sendTimeoutMs: 200 })
  const first = await guarded(transport.send(Buffer.from('STATUS=stuck')))
  t.match(first, { code: 'ERR_SDNOTIFY_TIMEOUT', transport: 'fd', errno: 'EAGAIN', syscall: 'write' })
  t.match(first, { message: /within 200 ms/ })
  // While that write still blocks a libuv pool thread, later sends wait for it instead of blocking more threads
  // (the pool has 4: fs, dns and zlib would hang with them).
  for (let i = 0; i < 5; i++) {
    const queued = await guarded(transport.send(Buffer.from('STATUS=queued')))
    t.match(queued, { code: 'ERR_SDNOTIFY_TIMEOUT', message: /earlier write/ })
  }
  t.match(await guarded(readFile('/proc/self/stat', 'utf8')), /^\d+ /, "libuv's thread pool still serves other work")
  // The manager reads again: the abandoned write completes (late: harmless, no second settlement), and sends work.
  t.same(await manager.drainUntil('STATUS=stuck'), ['STATUS=stuck'], 'only the first write ever reached the socket')
  t.equal(await guarded(transport.send(Buffer.from('STATUS=after'))), undefined)
  t.same(manager.drain(), ['STATUS=stuck', 'STATUS=after'])
  manager.close()
})

t.test('fd transport: notifier.close() does not wait for a stuck manager', async (t) => {
  const manager = await stuckManager()
  // LISTEN_FDS numbers descriptors from 3: name the socket's number "notify".
  const names = [...Array.from({ length: manager.writer - 3 }, () => 'other'), 'notify']
  const listen = { LISTEN_FDS: String(names.length), LISTEN_PID: String(process.pid), LISTEN_FDNAMES: names.join(':') }
  const env = { NOTIFY_SOCKET: '/nonexistent', ...listen }
  const n = createNotifier({ env, sendTimeoutMs: 200 })
  t.equal(n.transport, 'fd')
  t.match(await guarded(n.status('stuck')), { code: 'ERR_SDNOTIFY_TIMEOUT', transport: 'fd' })
  t.equal(await guarded(n.close()), undefined, 'closed without waiting for the manager')
  await manager.drainUntil('STATUS=stuck')
  manager.close()
})

t.test('fd transport: sendSync gives up after a bounded time when koffi is loaded, not never', async (t) => {
  const manager = await stuckManager()
  await loadLibc()
  // If sendSync blocked, only another thread could free it: this one reads a datagram after 5 s.
  const rescue = new Worker(
    `const { readSync } = require('node:fs'); setTimeout(() => readSync(${manager.reader}, Buffer.alloc(256)), 5000)`,
    { eval: true }
  )
  const transport = new FdTransport(manager.writer, { sendTimeoutMs: 200 })
  const stuck = { code: 'ERR_SDNOTIFY_TIMEOUT', transport: 'fd', errno: 'EAGAIN' }
  t.throws(() => transport.sendSync(Buffer.from('STOPPING=1')), stuck)
  await rescue.terminate()
  t.same(manager.drain(), [])
  transport.sendSync(Buffer.from('STOPPING=1'))
  t.same(manager.drain(), ['STOPPING=1'])
  manager.close()
})

t.test('findExecutable: only absolute PATH entries (never a systemd-notify in the working directory)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-path-'))
  const planted = join(dir, 'systemd-notify')
  writeFileSync(planted, '#!/bin/sh\nexit 0\n')
  chmodSync(planted, 0o755)
  const relative = pathRelative(process.cwd(), dir)
  t.equal(findExecutable('systemd-notify', relative), undefined, `a relative entry (${relative}) is skipped`)
  t.equal(findExecutable('systemd-notify', `./${relative}:${relative}/.`), undefined)
  t.equal(findExecutable('systemd-notify', `${relative}:${dir}/`), planted, 'the absolute one is used')
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/run/x', PATH: relative }, transport: 'exec' })
  t.match(n.describe().transports.find((p) => p.name === 'exec'), { usable: false, reason: /not found/ })
  t.end()
})

t.test('koffi loaded for the OpenFile= notify socket marks it close-on-exec', async (t) => {
  const libc = await loadLibc()
  const manager = await stuckManager()
  t.teardown(() => manager.close())
  libc.fcntl(manager.writer, F_SETFD, 0)
  await new KoffiTransport({ connectedFd: manager.writer }, options).load()
  t.equal(libc.fcntl(manager.writer, F_GETFD, 0) & FD_CLOEXEC, FD_CLOEXEC)
})
