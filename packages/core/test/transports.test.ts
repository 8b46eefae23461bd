import { closeSync, openSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createNotifier } from '../src/index.js'
import { parseNotifySocket, type UnixAddress } from '../src/address.js'
import { FdTransport } from '../src/transports/fd.js'
import { KoffiTransport } from '../src/transports/koffi.js'
import { UnixDgramTransport } from '../src/transports/unix-dgram.js'
import { fakeManager } from '@sdnotify/systemd-harness'

const options = { sendTimeoutMs: 5000 }

for (const name of ['koffi', 'unix-dgram'] as const) {
  // prepared: the transport is loaded first, so sends take the synchronous fast path until the queue is
  // full, then the queued, retrying path: order and count must survive the switch.
  for (const prepared of [false, true]) {
    t.test(`${name}${prepared ? ' (prepared: fast path)' : ''}: a burst into a full queue is delivered whole and in order`, async (t) => {
      const fake = fakeManager()
      t.teardown(() => fake.close())
      const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: name })
      if (prepared) t.equal(await n.prepare(), true)
      fake.pause() // the manager is busy: the kernel queue (net.unix.max_dgram_qlen) fills up
      const sends = Array.from({ length: 2000 }, (_, i) => n.status(`message ${i}`))
      await new Promise((resolve) => setTimeout(resolve, 200))
      fake.resume()
      t.ok((await Promise.all(sends)).every(Boolean))
      await fake.waitFor(2000)
      t.equal(fake.messages.length, 2000, 'nothing was dropped')
      t.ok(fake.messages.every((m, i) => m.text === `STATUS=message ${i}`), 'in order')
      t.equal(n.transport, name)
      await n.close()
    })
  }
}

t.test('unix-dgram trySend: true when sent, false (not sent, nothing lost) on a full queue, closes its socket', async (t) => {
  const fake = fakeManager()
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
  await fake.waitFor(sent)
  t.same(fake.messages.map((m) => m.text), results.slice(0, sent).map((_, i) => `STATUS=${i}`))
})

t.test('koffi: a queue that stays full rejects after sendTimeoutMs, naming EAGAIN', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  fake.pause()
  const transport = new KoffiTransport({ address: parseNotifySocket(fake.address) as UnixAddress }, { sendTimeoutMs: 300 })
  t.teardown(() => transport.close())
  const sends = Array.from({ length: 100 }, () => transport.send(Buffer.from('STATUS=x')).then(() => 'sent', (e: Error & { code?: string; errno?: string }) => `${e.code} ${e.errno}`))
  const results = await Promise.all(sends)
  t.ok(results.includes('sent'), 'the first ones fit in the queue')
  t.ok(results.includes('ERR_SDNOTIFY_TIMEOUT EAGAIN'), 'the rest time out with EAGAIN instead of vanishing')
})

t.test('koffi reaches abstract socket names', async (t) => {
  const fake = fakeManager({ abstract: true })
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  t.equal(await n.ready('abstract'), true)
  t.same((await fake.waitFor(1)).map((m) => m.text), ['READY=1\nSTATUS=abstract'])
  await n.close()
})

t.test('unix-dgram refuses abstract names', async (t) => {
  t.throws(() => new UnixDgramTransport(parseNotifySocket('@x') as UnixAddress, options), { code: 'ERR_SDNOTIFY_UNSUPPORTED' })
})

t.test('unix-dgram closes its socket when idle, so the process can exit', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const transport = new UnixDgramTransport(parseNotifySocket(fake.address) as UnixAddress, options)
  await transport.send(Buffer.from('READY=1'))
  t.equal((transport as unknown as { socket: unknown }).socket, undefined)
  await fake.waitFor(1)
})

t.test('FDSTORE passes descriptors with SCM_RIGHTS', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  const fd = openSync('/dev/null', 'r')
  t.equal(await n.storeFds([fd], 'devnull', { poll: false }), true)
  closeSync(fd)
  const [message] = await fake.waitFor(1)
  t.equal(message?.text, 'FDSTORE=1\nFDNAME=devnull\nFDPOLL=0')
  t.equal(message?.fds.length, 1, 'one descriptor arrived')
  fake.closeFd(message?.fds[0] as number)
  await n.close()
})

t.test('unix-dgram hands fd passing to koffi over the same socket', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: 'unix-dgram' })
  await n.ready()
  t.equal(await n.storeFds([0], 'stdin'), true)
  const messages = await fake.waitFor(2)
  t.equal(messages[1]?.fds.length, 1)
  t.equal(n.transport, 'unix-dgram')
  fake.closeFd(messages[1]?.fds[0] as number)
  await n.close()
})

t.test('barrier: resolves when the manager closes its copy of the pipe, times out otherwise', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.status('before')
  const barrier = n.barrier(5000)
  const messages = await fake.waitFor(2)
  t.equal(messages[1]?.text, 'BARRIER=1')
  t.equal(messages[1]?.fds.length, 1)
  fake.closeFd(messages[1]?.fds[0] as number) // what systemd does once it has processed everything before
  t.equal(await barrier, true)

  const slow = n.barrier(200)
  await fake.waitFor(3)
  await t.rejects(slow, { code: 'ERR_SDNOTIFY_TIMEOUT', message: /barrier not acknowledged within 200 ms/ })
  fake.closeFd(fake.messages[2]?.fds[0] as number)
  await n.close()
})

t.test('fd transport writes to an already-connected descriptor', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  // A connected datagram socket, as OpenFile= would pass: made here with koffi.
  const koffi = (await import('koffi')).default
  const libc = koffi.load('libc.so.6')
  const socket = libc.func('int socket(int, int, int)')
  const connect = libc.func('int connect(int, const void *, uint32_t)')
  const fd = socket(1, 2, 0) as number
  const address = parseNotifySocket(fake.address) as UnixAddress
  t.equal(connect(fd, address.sockaddr, address.sockaddr.length), 0)
  const transport = new FdTransport(fd)
  await transport.send(Buffer.from('READY=1\nSTATUS=via fd'))
  t.same((await fake.waitFor(1)).map((m) => m.text), ['READY=1\nSTATUS=via fd'])
  closeSync(fd)
  await t.rejects(transport.send(Buffer.from('READY=1')), { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'fd', errno: 'EBADF' })
})

t.test('exec: spawns systemd-notify with the assignments as arguments, no shell', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-exec-'))
  const fakeNotify = join(dir, 'systemd-notify')
  const record = join(dir, 'args')
  writeFileSync(fakeNotify, `#!/bin/sh\nfor a in "$@"; do printf '%s|' "$a"; done > ${record}\necho "$NOTIFY_SOCKET" >> ${record}\n`)
  chmodSync(fakeNotify, 0o755)
  const warnings: string[] = []
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/run/test/notify' }, transport: 'exec', systemdNotify: fakeNotify, onWarning: (_m, code) => warnings.push(code) })
  t.equal(await n.ready('a; rm -rf / $(id)'), true)
  const { readFileSync } = await import('node:fs')
  t.equal(readFileSync(record, 'utf8'), 'READY=1|STATUS=a; rm -rf / $(id)|/run/test/notify\n', 'arguments passed verbatim')
  t.same(warnings, ['SDNOTIFY_EXEC_FALLBACK'], 'warned once about NotifyAccess=all')
  await n.status('again')
  t.same(warnings, ['SDNOTIFY_EXEC_FALLBACK'], 'only once')

  writeFileSync(fakeNotify, '#!/bin/sh\necho "Failed to notify init system: Permission denied" >&2\nexit 1\n')
  await t.rejects(n.status('x'), { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'exec', message: /exit status 1.*Permission denied/ })
  // systemd-notify cannot pass descriptors: FDSTORE goes through koffi (installed here) to the same socket.
  await t.rejects(n.storeFds([0], 'x'), { code: 'ERR_SDNOTIFY_SEND_FAILED', transport: 'koffi', errno: 'ENOENT' })
})

t.test('exec against the real systemd-notify', { skip: process.getuid?.() === 0 ? false : 'needs root (systemd-notify may fake the sender pid only as root)' }, async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address, PATH: '/usr/bin:/bin' }, transport: 'exec', onWarning: () => {} })
  const sent = n.ready('from systemd-notify')
  // systemd-notify waits for a BARRIER=1 acknowledgement: play the manager's part.
  await fake.waitFor(2)
  for (const m of fake.messages) for (const fd of m.fds) fake.closeFd(fd)
  t.equal(await sent, true)
  t.equal(fake.messages[0]?.text, 'READY=1\nSTATUS=from systemd-notify')
  t.equal(fake.messages[1]?.text, 'BARRIER=1')
})

t.test('sendSync: last words, synchronously, once prepare() has loaded the transport', async (t) => {
  for (const name of ['koffi', 'unix-dgram'] as const) {
    const fake = fakeManager()
    t.teardown(() => fake.close())
    const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: name })
    t.throws(() => n.sendSync({ errno: 98 }), { code: 'ERR_SDNOTIFY_UNSUPPORTED', message: /prepare\(\)/ }, `${name}: not loaded yet`)
    t.equal(await n.prepare(), true)
    t.equal(n.sendSync({ errno: 98, status: 'Failed to listen: EADDRINUSE' }), true, `${name}: sent`)
    t.equal(n.lastStatus, 'Failed to listen: EADDRINUSE')
    t.same((await fake.waitFor(1)).map((m) => m.text), ['STATUS=Failed to listen: EADDRINUSE\nERRNO=98'])
    t.throws(() => n.sendSync({ status: 'a\nb' }), { name: 'SdNotifyError', field: 'STATUS' })
    await n.close()
    t.throws(() => n.sendSync({ ready: true }), { code: 'ERR_SDNOTIFY_CLOSED' })
  }
  const off = createNotifier({ env: {} })
  t.equal(await off.prepare(), false)
  t.equal(off.sendSync({ ready: true }), false, 'not under systemd: false')
})

t.test('sendSync on the fd and exec transports', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const koffi = (await import('koffi')).default
  const libc = koffi.load('libc.so.6')
  const fd = libc.func('int socket(int, int, int)')(1, 2, 0) as number
  const address = parseNotifySocket(fake.address) as UnixAddress
  libc.func('int connect(int, const void *, uint32_t)')(fd, address.sockaddr, address.sockaddr.length)
  new FdTransport(fd).sendSync(Buffer.from('STOPPING=1'))
  t.same((await fake.waitFor(1)).map((m) => m.text), ['STOPPING=1'])
  closeSync(fd)
  t.throws(() => new FdTransport(fd).sendSync(Buffer.from('X=1')), { code: 'ERR_SDNOTIFY_SEND_FAILED', errno: 'EBADF' })

  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-exec-'))
  const script = join(dir, 'systemd-notify')
  writeFileSync(script, `#!/bin/sh\necho "$@" > ${dir}/args\n`)
  chmodSync(script, 0o755)
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, transport: 'exec', systemdNotify: script, onWarning: () => {} })
  await n.prepare()
  t.equal(n.sendSync({ errno: 13 }), true)
  const { readFileSync } = await import('node:fs')
  t.equal(readFileSync(join(dir, 'args'), 'utf8'), 'ERRNO=13\n')
})
