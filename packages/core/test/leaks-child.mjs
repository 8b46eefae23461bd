// Run by leaks.test.ts as `node --expose-gc` against the built bundle (dist): sends through a fake manager,
// fails sends and barriers against a missing socket, and prints open descriptors and heap after each phase.
// Status updates are sent 1,000 at once, so most supersede one another in the queue; every 100th send is a
// custom field, which is always delivered.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
// The harness's fake, not the kit's: the kit keeps every datagram (100,000 here), which would read as our leak.
import { fakeManager } from '@sdnotify/systemd-harness'
import koffi from 'koffi'
import { createNotifier } from '../dist/esm/index.js'

if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc')

async function figures () {
  // Several full collections, with turns of the event loop between them for finalizers and closed handles.
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await tick()
  }
  return { fds: readdirSync('/proc/self/fd').length, heap: process.memoryUsage().heapUsed }
}

const fake = fakeManager()
// No manager there: every send fails with ENOENT. (Not a closed fakeManager(): closing one before koffi is
// imported here makes that import resolve koffi through the unresolved node_modules symlink, and fail.)
const empty = mkdtempSync(join(tmpdir(), 'sdnotify-leaks-'))
const missing = join(empty, 'notify')
const notifier = createNotifier({ env: { NOTIFY_SOCKET: fake.address }, transport: 'koffi', sendTimeoutMs: 10_000 })
// The fd transport (OpenFile=): a socket connected to the fake manager, named "notify" in LISTEN_FDNAMES.
const libc = koffi.load('libc.so.6')
const connected = libc.func('int socket(int, int, int)')(1, 2 | 0o2000000, 0)
const address = Buffer.alloc(2 + Buffer.byteLength(fake.address) + 1)
address.writeUInt16LE(1, 0)
address.write(fake.address, 2)
const connect = libc.func('int connect(int, const void *, uint32_t)')
if (connect(connected, address, address.length) !== 0) throw new Error('connect failed')
const names = [...Array.from({ length: connected - 3 }, () => 'other'), 'notify']
const listen = { LISTEN_FDS: String(names.length), LISTEN_PID: String(process.pid), LISTEN_FDNAMES: names.join(':') }
const viaFd = createNotifier({ env: { NOTIFY_SOCKET: fake.address, ...listen }, sendTimeoutMs: 10_000 })
if (viaFd.transport !== 'fd') throw new Error(`expected the fd transport, got ${viaFd.transport}`)
const failing = createNotifier({ env: { NOTIFY_SOCKET: missing }, transport: 'koffi' })
const failingDgram = createNotifier({ env: { NOTIFY_SOCKET: missing }, transport: 'unix-dgram' })
await notifier.prepare()

let sequence = 0
/** 1,000 sends at once: status updates (a newer one supersedes a queued one) and custom fields (never dropped). */
async function round (through = notifier) {
  const sends = []
  for (let i = 0; i < 1000; i++) {
    sequence++
    sends.push(i % 100 === 99 ? through.send({ extra: { X_SEQUENCE: sequence } }) : through.status(`step ${sequence}`))
  }
  const results = await Promise.all(sends)
  if (!results.every(Boolean)) throw new Error('a send resolved false')
  fake.messages.length = 0 // what the fake manager received is not ours to measure
}

async function failures (count) {
  let failed = 0
  for (let i = 0; i < count; i++) {
    const operations = [
      () => failing.ready(),
      () => failing.barrier(1000),
      () => failingDgram.ready(),
      () => failingDgram.barrier(1000),
    ]
    for (const operation of operations) {
      await operation().then(
        () => undefined,
        (error) => {
          if (error?.code === 'ERR_SDNOTIFY_SEND_FAILED') failed++
        }
      )
    }
  }
  return failed
}

// Warm-up: lazy imports, koffi's socket and code caches are in place before the first figures.
for (let i = 0; i < 10; i++) await round(i % 2 === 0 ? notifier : viaFd)
await failures(100)
const start = await figures()
// 100,000 sends: 90,000 through koffi, 10,000 through the fd transport.
for (let i = 0; i < 100; i++) await round(i % 10 === 9 ? viaFd : notifier)
const afterSends = await figures()
const failed = await failures(1000)
const afterFailures = await figures()
await notifier.close()
await viaFd.close()
libc.func('int close(int)')(connected)
await failing.close()
await failingDgram.close()
fake.close()
rmSync(empty, { recursive: true, force: true })
console.log(JSON.stringify({ start, afterSends, afterFailures, sends: sequence - 10_000, failed }))
