// The service under fault injection (runs as nobody under a private systemd manager). It uses only the
// public API of @sdnotify/core, as an application would, and keeps its own account of every call: the
// runner (run.mjs) drives it over HTTP on $PORT (which keeps working while the manager is frozen) and
// compares that account with what the manager logged. Lifecycle events go to $SOAK_LOG (JSON lines).
import { appendFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createNotifier } from '@sdnotify/core'

const env = process.env
const log = (event, data = {}) => {
  appendFileSync(env.SOAK_LOG, `${JSON.stringify({ event, pid: process.pid, t: Date.now(), ...data })}\n`)
}
// A collectable heap reading: gc() without starting node with --expose-gc (the unit's ExecStart is fixed).
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
const memory = (collect) => {
  if (collect) gc()
  const { rss, heapUsed } = process.memoryUsage()
  return { rssMb: rss / 2 ** 20, heapMb: heapUsed / 2 ** 20 }
}

const problems = { unhandled: [], errors: [] }
process.on('unhandledRejection', (error) => {
  problems.unhandled.push(String(error?.message ?? error))
  log('unhandled', { message: String(error?.message ?? error) })
})

const notifier = createNotifier({
  transport: env.SOAK_TRANSPORT || 'auto',
  ...(env.SOAK_SEND_TIMEOUT_MS ? { sendTimeoutMs: Number(env.SOAK_SEND_TIMEOUT_MS) } : {}),
  onError: (error) => {
    problems.errors.push(`${error?.code}/${error?.errno}`)
    log('error', { code: error?.code, errno: error?.errno, message: String(error?.message ?? error) })
  },
})

/**
 * One numbered series of calls (a ticker or a burst): when each was submitted and how it settled. Settled
 * entries are dropped from `open`, so the oldest unsettled call is always its first entry. `mixed`: every
 * even call is `send({ status, extra: { X_SEQ } })` rather than `status()`: a combined message, which the
 * notifier must never drop, while it may let a newer status-only message supersede a queued one.
 */
class Series {
  constructor (prefix, mixed) {
    this.prefix = prefix
    this.mixed = mixed
    this.seq = 0
    this.open = new Map()
    this.outcomes = {}
    this.delivered = [] // sequence numbers whose promise resolved true
    this.maxPending = 0
    this.maxOldestPendingMs = 0
    this.maxSettleMs = 0
    this.maxRejectMs = 0
    this.rejectErrnos = {}
    this.firstAfter = undefined // { mark, seq, settledMs }: the first call submitted after mark()
  }

  submit () {
    const seq = ++this.seq
    const at = performance.now()
    this.open.set(seq, at)
    this.maxPending = Math.max(this.maxPending, this.open.size)
    const settle = (outcome, error) => {
      const ms = performance.now() - at
      this.open.delete(seq)
      this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1
      this.maxSettleMs = Math.max(this.maxSettleMs, ms)
      if (outcome === 'true') this.delivered.push(seq)
      if (error) {
        this.maxRejectMs = Math.max(this.maxRejectMs, ms)
        this.rejectErrnos[String(error.errno)] = (this.rejectErrnos[String(error.errno)] ?? 0) + 1
      }
      if (this.firstAfter?.seq === seq) this.firstAfter.settledMs = performance.now() - this.firstAfter.mark
    }
    if (this.firstAfter && this.firstAfter.seq === undefined) this.firstAfter.seq = seq
    const text = `${this.prefix} ${seq}`
    const combined = this.mixed && seq % 2 === 0
    const call = combined ? notifier.send({ status: text, extra: { X_SEQ: seq } }) : notifier.status(text)
    call.then(
      (sent) => settle(String(sent)),
      (error) => settle(`rejected ${error?.code}`, error ?? {})
    )
  }

  /** The age of the oldest call still waiting, in ms. */
  sample () {
    const oldest = this.open.values().next()
    if (!oldest.done) this.maxOldestPendingMs = Math.max(this.maxOldestPendingMs, performance.now() - oldest.value)
  }

  async settled (timeoutMs) {
    const deadline = Date.now() + timeoutMs
    while (this.open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  }

  summary () {
    return {
      prefix: this.prefix,
      mixed: this.mixed,
      submitted: this.seq,
      last: this.seq,
      unsettled: this.open.size,
      outcomes: this.outcomes,
      delivered: this.delivered,
      maxPending: this.maxPending,
      maxOldestPendingMs: this.maxOldestPendingMs,
      maxSettleMs: this.maxSettleMs,
      maxRejectMs: this.maxRejectMs,
      rejectErrnos: this.rejectErrnos,
      firstAfter: this.firstAfter,
    }
  }
}

let ticker
let health = 'ok'
const block = (ms) => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    /* a wedged event loop */
  }
}

/** Starts a call every `everyMs` (status(), or alternately send() when mixed), sampling backlog and memory. */
function startTicker (everyMs, prefix, mixed) {
  const series = new Series(prefix, mixed)
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  const memory0 = memory(true)
  const samples = { peakRssMb: memory0.rssMb, peakHeapMb: memory0.heapMb }
  let ticks = 0
  const timer = setInterval(() => {
    series.sample()
    series.submit()
    if (++ticks % Math.max(1, Math.round(1000 / everyMs)) === 0) {
      const m = memory(false)
      samples.peakRssMb = Math.max(samples.peakRssMb, m.rssMb)
      samples.peakHeapMb = Math.max(samples.peakHeapMb, m.heapMb)
    }
  }, everyMs)
  ticker = { series, timer, histogram, memory0, samples }
}

async function stopTicker (settleMs) {
  clearInterval(ticker.timer)
  await ticker.series.settled(settleMs)
  ticker.histogram.disable()
  const result = {
    ...ticker.series.summary(),
    maxLoopDelayMs: ticker.histogram.max / 1e6,
    memoryBefore: ticker.memory0,
    memoryPeak: ticker.samples,
    memoryAfter: memory(true),
  }
  ticker = undefined
  return result
}

/** `count` calls at once, as fast as the API takes them; resolves once all have settled. */
async function burst (count, prefix, mixed) {
  const series = new Series(prefix, mixed)
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  await new Promise((resolve) => setTimeout(resolve, 20)) // the histogram's first sample only sets its baseline
  const t0 = performance.now()
  for (let i = 0; i < count; i++) series.submit()
  const submitMs = performance.now() - t0
  await series.settled(600_000)
  const ms = performance.now() - t0
  await new Promise((resolve) => setTimeout(resolve, 20))
  histogram.disable()
  return { ...series.summary(), ms, submitMs, maxLoopDelayMs: histogram.max / 1e6 }
}

// The application's own health check, switched by the runner: healthy, never settling, or throwing
// synchronously (a bug in the check itself).
function healthCheck () {
  if (health === 'hang') return new Promise(() => {})
  if (health === 'throw') throw new Error('health check threw synchronously')
  return true
}

const routes = {
  '/report': async () => ({ pid: process.pid, transport: notifier.transport, health, ...problems }),
  '/ticker/start': async (q) => {
    startTicker(Number(q.get('everyMs') ?? 10), q.get('prefix') ?? 'seq', q.has('mixed'))
    return { started: true }
  },
  '/ticker/mark': async () => {
    ticker.series.firstAfter = { mark: performance.now() }
    return { seq: ticker.series.seq }
  },
  '/ticker/stop': async (q) => stopTicker(Number(q.get('settleMs') ?? 30_000)),
  '/burst': async (q) => burst(Number(q.get('count')), q.get('prefix') ?? 'burst', q.has('mixed')),
  '/ping': async () => ({ sent: await notifier.watchdog.ping() }),
  '/health': async (q) => {
    health = q.get('mode') ?? 'ok'
    return { health }
  },
  '/memory': async () => memory(true),
  // The reply goes out first; then the event loop is wedged, as a stuck request handler would.
  '/stall': async (q, res) => {
    const ms = Number(q.get('ms') ?? 2000)
    res.once('finish', () => setTimeout(() => {
      log('stall', { ms })
      block(ms)
    }, 5))
    return { stalling: ms }
  },
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const route = routes[url.pathname]
  if (!route) return res.writeHead(404).end()
  route(url.searchParams, res).then(
    (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
    (error) => res.writeHead(500).end(JSON.stringify({ error: String(error?.stack ?? error) }))
  )
})

process.on('SIGTERM', async () => {
  await notifier.stopping('Stopping').catch(() => false)
  process.exit(0)
})
// Timer lateness, cheaply (10 wake-ups/s), for the soak: how late the event loop ran beside the CPU hogs.
if (env.SOAK_LATENESS) {
  let maxLateMs = 0
  let due = performance.now() + 100
  setInterval(() => {
    maxLateMs = Math.max(maxLateMs, performance.now() - due)
    due = performance.now() + 100
  }, 100)
  routes['/lateness'] = async () => ({ maxLateMs })
}

server.listen(Number(env.PORT), '127.0.0.1', async () => {
  log('start', { transport: notifier.transport, node: process.version, uid: process.getuid?.() })
  await notifier.ready(env.SOAK_STATUS ?? 'ready')
  if (env.WATCHDOG_USEC) {
    const started = notifier.watchdog.start({ healthCheck, onUnhealthy: (reason) => log('unhealthy', { reason }) })
    log('watchdog', { started, timeoutMs: notifier.watchdog.intervalMs })
  }
  log('ready')
})
