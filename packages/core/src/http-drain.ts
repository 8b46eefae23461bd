// Graceful-drain bookkeeping for node:http / https / http2 servers, shared by the adapters: which
// connections carry requests in flight, and how to end keep-alive connections once a drain has begun
// (otherwise a connection that turns idle after close() stays open until keepAliveTimeout).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface EventSource {
  on(event: string, listener: (...args: any[]) => void): unknown
}

interface Session {
  close(): void
  destroy(): void
  once(event: 'close', listener: () => void): unknown
}

interface Tracked {
  socket: Socket
  active: number
  /** Responses in flight whose headers are not sent yet. */
  pending: Set<ServerResponse>
}

export interface HttpDrain {
  /** Connections (and http2 sessions) carrying requests in flight. */
  readonly inFlight: number
  /** Open connections and sessions. */
  readonly connections: number
  /**
   * Starts the drain: idle connections end now, responses still to be written carry `Connection: close`,
   * and each connection ends when its last request finishes. `onChange(inFlight)` follows the count.
   */
  begin(onChange?: (inFlight: number) => void): void
  /** Cuts off everything still open (after a drain timeout). */
  destroyAll(): void
}

export function trackHttpConnections(server: EventSource): HttpDrain {
  const tracked = new Map<Socket, Tracked>()
  const sessions = new Set<Session>()
  let draining = false
  let changed: (() => void) | undefined

  server.on('connection', (socket: Socket) => {
    tracked.set(socket, { socket, active: 0, pending: new Set() })
    socket.once('close', () => tracked.delete(socket))
  })
  server.on('session', (session: Session) => {
    sessions.add(session)
    session.once('close', () => {
      sessions.delete(session)
      changed?.()
    })
  })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const entry = tracked.get(req.socket)
    if (!entry) return // http2 streams: their sessions are closed gracefully instead
    entry.active++
    if (draining) res.setHeader('connection', 'close')
    else entry.pending.add(res)
    res.once('close', () => {
      entry.active--
      entry.pending.delete(res)
      if (!draining) return
      if (entry.active === 0) entry.socket.end()
      changed?.()
    })
  })

  const drain: HttpDrain = {
    get inFlight() {
      let count = sessions.size
      for (const entry of tracked.values()) if (entry.active > 0) count++
      return count
    },
    get connections() {
      return tracked.size + sessions.size
    },
    begin(onChange) {
      if (draining) return
      draining = true
      for (const entry of tracked.values()) {
        if (entry.active === 0) entry.socket.end()
        for (const res of entry.pending) if (!res.headersSent) res.setHeader('connection', 'close')
        entry.pending.clear()
      }
      for (const session of sessions) session.close()
      if (!onChange) return
      // One report per change of the count, coalesced within a tick.
      let last = drain.inFlight
      let scheduled = false
      changed = () => {
        if (scheduled) return
        scheduled = true
        setImmediate(() => {
          scheduled = false
          const now = drain.inFlight
          if (now !== last) onChange((last = now))
        })
      }
    },
    destroyAll() {
      changed = undefined
      for (const entry of tracked.values()) entry.socket.destroy()
      for (const session of sessions) session.destroy()
    },
  }
  return drain
}
