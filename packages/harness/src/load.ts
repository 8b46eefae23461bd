// A client load for restart tests: `clients` loops, each making one request per fresh connection (no
// keep-alive), so that every request needs the listening socket. Failures are told apart: a connection the
// kernel refused (nothing listening: the restart gap) versus a request that failed after it was accepted
// (in flight on a dying process). Bounded: it stops on stop() or after `maxMs`, whichever comes first.
import { request } from 'node:http'

export interface LoadOptions {
  port: number
  host?: string
  path?: string
  /** Concurrent request loops. Default 4. */
  clients?: number
  /** Safety stop. Default 120 000 ms. */
  maxMs?: number
}

export interface LoadResult {
  ok: number
  /** ECONNREFUSED (or ENOENT for a unix socket): nothing was listening. */
  refused: number
  /** Accepted, then reset, cut off or answered with a 5xx: in flight on a process that went away. */
  inFlight: number
  /** Error codes and counts, for the test's message. */
  errors: Record<string, number>
  /** The slowest successful request, in ms (a request that waited in the backlog through a restart). */
  maxLatencyMs: number
  durationMs: number
}

export interface Load {
  /** Requests so far (all outcomes). */
  readonly total: number
  stop(): Promise<LoadResult>
}

export function startLoad (options: LoadOptions): Load {
  const result: LoadResult = { ok: 0, refused: 0, inFlight: 0, errors: {}, maxLatencyMs: 0, durationMs: 0 }
  const started = Date.now()
  let running = true
  const safety = setTimeout(() => (running = false), options.maxMs ?? 120_000)
  const count = (code: string) => (result.errors[code] = (result.errors[code] ?? 0) + 1)

  const once = () =>
    new Promise<void>((resolve) => {
      const begin = performance.now()
      let connected = false
      const host = options.host ?? '127.0.0.1'
      const req = request({ host, port: options.port, path: options.path ?? '/', agent: false })
      req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
      req.on('socket', (socket) => socket.once('connect', () => (connected = true)))
      req.on('response', (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode !== undefined && res.statusCode < 500) {
            result.ok++
            result.maxLatencyMs = Math.max(result.maxLatencyMs, performance.now() - begin)
          } else {
            result.inFlight++
            count(`HTTP ${res.statusCode}`)
          }
          resolve()
        })
        res.on('error', () => undefined)
      })
      req.on('error', (error: NodeJS.ErrnoException) => {
        const code = error.code ?? error.message
        if (!connected && (code === 'ECONNREFUSED' || code === 'ENOENT')) result.refused++
        else result.inFlight++
        count(code)
        resolve()
      })
      req.end()
    })

  const loop = async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- stop() and the safety timer clear it during the await
    while (running) await once()
  }
  const loops = Array.from({ length: options.clients ?? 4 }, loop)
  return {
    get total () {
      return result.ok + result.refused + result.inFlight
    },
    async stop () {
      running = false
      await Promise.all(loops)
      clearTimeout(safety)
      result.durationMs = Date.now() - started
      return result
    },
  }
}
