// One writer for the journal rows of pnpm bench (journal.mjs runs it inside a private journald's mount namespace,
// so /run/systemd/journal/* are that journald's): `count` info lines of one shape (a message and 3 fields), in one
// synchronous burst, as fast as the method takes them; then waits until the method has handed every line on.
// Writes {"pid", "startedAtMs", "syncMs", "loopMs", "wallMs", "counters"?, "error"?} to $BENCH_OUT.
//   journalStream  pino → @sdnotify/core's journalStream() → journald's native socket
//   pino-stdout    pino's default destination (SonicBoom on fd 1): a file, or journald's stream socket
//   sd-notify      sd-notify's log.info() → sd_journal_print(3), a blocking sendmsg() in libsystemd
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'

const [method, countText] = process.argv.slice(2)
const count = Number(countText)
const WARM_UP = 100 // lines before the clock starts (koffi or the addon loaded, the code warm); their MESSAGE says so
const require = createRequire(new URL('../packages/core/package.json', import.meta.url)) // pino: core's devDependency
const fields = (i) => ({ reqId: `req-${i}`, userId: 42, route: '/orders/:id' })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function writer () {
  if (method === 'journalStream') {
    const pino = require('pino')
    const { journalStream } = await import('@sdnotify/core/journal')
    const stream = journalStream({ target: 'journal', identifier: 'bench-journal' })
    const logger = pino(stream)
    return { log: (obj, msg) => logger.info(obj, msg), flush: () => stream.flush(), counters: () => stream.counters() }
  }
  if (method === 'pino-stdout') {
    const pino = require('pino')
    const logger = pino()
    // The default destination is an asynchronous SonicBoom (sync: false, minLength 0): lines are buffered and
    // written by fs.write on libuv's thread pool, one write at a time; 'drain' once all is written.
    // (logger.flush() would not wait for that, and would add an fsync.)
    const boom = logger[pino.symbols.streamSym]
    return {
      log: (obj, msg) => logger.info(obj, msg),
      flush: () => (boom._writing ? once(boom, 'drain') : Promise.resolve()),
    }
  }
  if (method === 'sd-notify') {
    if (!process.env.BENCH_SD_NOTIFY) throw new Error('sd-notify is not built (needs libsystemd-dev and a compiler)')
    // sd-notify's log.info(...args) joins its arguments with spaces into MESSAGE (its index.js; the README does not
    // describe log): sd_journal_print() sends MESSAGE and PRIORITY only, so the fields go into the text.
    const { log } = createRequire(process.env.BENCH_SD_NOTIFY)('sd-notify')
    const text = (obj) => Object.entries(obj).map(([key, value]) => `${key}=${value}`).join(' ')
    return { log: (obj, msg) => log.info(msg, text(obj)), flush: async () => {} }
  }
  throw new Error(`journal-writer: unknown method ${method}`)
}

const result = { method, pid: process.pid }
try {
  const w = await writer()
  for (let i = 0; i < WARM_UP; i++) w.log({ warmUp: i }, 'warm-up')
  await w.flush()
  await sleep(200) // journald takes the warm-up lines in; the event loop is running
  const elu = performance.eventLoopUtilization()
  const t0 = performance.now()
  result.startedAtMs = performance.timeOrigin + t0 // wall clock, to compare with journald's __REALTIME_TIMESTAMP
  for (let i = 0; i < count; i++) w.log(fields(i), 'request handled')
  result.syncMs = performance.now() - t0
  await w.flush()
  result.wallMs = performance.now() - t0
  // The event loop's busy time over the run: the synchronous burst and every turn spent retrying a full journald.
  result.loopMs = performance.eventLoopUtilization(elu).active
  if (w.counters) result.counters = w.counters()
} catch (error) {
  result.error = error.message
}
writeFileSync(process.env.BENCH_OUT, JSON.stringify(result))
