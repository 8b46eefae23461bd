// Graceful drain for node:http, https and http2 servers (TLS and cleartext), shared by the adapters.
// It follows responses, not sockets: an HTTP/1 request is keyed by its own `req.socket` (for HTTPS the TLS
// socket, which is not the TCP socket of the server's 'connection' event), an HTTP/2 request by its stream's
// session. Node does the rest: closeIdleConnections() ends idle keep-alive connections, closeAllConnections()
// cuts off what is left after the timeout, and Http2Session.close() is HTTP/2's graceful GOAWAY.
// Without the drain, a connection that turns idle after server.close() stays open until keepAliveTimeout
// (Node 20 adds no `Connection: close` to responses in flight when the server closes).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface EventSource {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type, which servers fit
  on(event: string, listener: (...args: any[]) => void): unknown
}

/** The methods of http.Server / https.Server (Node ≥ 18.2) the drain uses when present (not on http2 servers). */
interface HttpServerMethods {
  closeIdleConnections?(): void
  closeAllConnections?(): void
}

interface Session {
  close(): void
  destroy(): void
  once(event: 'close', listener: () => void): unknown
  readonly closed?: boolean
}

interface Stream {
  readonly session?: Session
  once(event: 'close', listener: () => void): unknown
}

/** HTTP/1 requests in flight on one connection, oldest first. */
interface Connection {
  socket: Socket
  responses: ServerResponse[]
  /** The response we put `Connection: close` on. */
  closing: ServerResponse | undefined
}

export interface HttpDrain {
  /** Connections (HTTP/1 connections and HTTP/2 sessions) carrying requests in flight. */
  readonly inFlight: number
  /** Requests in flight (HTTP/1 responses not finished, HTTP/2 streams open). */
  readonly requests: number
  /** Open connections. */
  readonly connections: number
  /**
   * Starts the drain: idle connections end now; on a connection with requests in flight, the last response
   * carries `Connection: close` (HTTP/1; a request that arrives on it during the drain is still answered) and
   * the connection ends after it; HTTP/2 sessions get GOAWAY and end when their streams are done.
   * `onChange(inFlight)` follows the count. Call it before or after server.close().
   */
  begin(onChange?: (inFlight: number) => void): void
  /** Cuts off everything still open (after a drain timeout). */
  destroyAll(): void
}

export function trackHttpConnections (server: EventSource): HttpDrain {
  const http = server as EventSource & HttpServerMethods
  const sockets = new Set<Socket>() // every TCP connection, for the count and destroyAll()
  const http1 = new Map<Socket, Connection>()
  const sessions = new Map<Session, number>() // HTTP/2 session → streams open
  // An http2 server with allowHTTP1 has no closeIdleConnections(): its HTTP/1 connections are followed here.
  const fallback = typeof http.closeIdleConnections === 'function' ? undefined : new Set<Socket>()
  let draining = false
  let changed: (() => void) | undefined

  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  if (fallback) {
    server.on('secureConnection', (socket: Socket & { alpnProtocol?: string | false }) => {
      if (socket.alpnProtocol === 'h2') return
      fallback.add(socket)
      socket.once('close', () => fallback.delete(socket))
    })
  }

  server.on('session', (session: Session) => {
    sessions.set(session, 0)
    if (draining) session.close() // accepted before listening stopped
    session.once('close', () => {
      sessions.delete(session)
      changed?.()
    })
  })
  server.on('stream', (stream: Stream) => {
    const { session } = stream
    if (!session || !sessions.has(session)) return
    sessions.set(session, (sessions.get(session) ?? 0) + 1)
    stream.once('close', () => {
      if (sessions.has(session)) sessions.set(session, Math.max(0, (sessions.get(session) ?? 1) - 1))
      changed?.()
    })
  })

  // Before the app's own handler, which may answer at once: the header must go in before it is sent.
  const first =
    (server as { prependListener?: EventSource['on'] }).prependListener?.bind(server) ?? server.on.bind(server)
  first('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersionMajor >= 2) return // an HTTP/2 compatibility request: followed through its stream
    const socket = req.socket
    let connection = http1.get(socket)
    if (!connection) http1.set(socket, (connection = { socket, responses: [], closing: undefined }))
    const entry = connection
    entry.responses.push(res)
    if (draining) closeAfterLast(entry)
    res.once('close', () => {
      const index = entry.responses.indexOf(res)
      if (index >= 0) entry.responses.splice(index, 1)
      if (entry.responses.length === 0) http1.delete(socket)
      if (draining) {
        // A response sent with keep-alive before the drain began leaves its connection open and idle.
        if (entry.responses.length === 0 && res !== entry.closing) setImmediate(() => closeIdle(socket))
        changed?.()
      }
    })
  })

  /**
   * `Connection: close` on the connection's last response, if its headers are not sent yet: Node ends the
   * connection after it, and the client knows not to reuse it. Only the last: pipelined requests before it
   * must still be answered, and Node ends the connection right after a response that says close.
   */
  function closeAfterLast (entry: Connection): void {
    const last = entry.responses[entry.responses.length - 1]
    if (!last || last === entry.closing || last.headersSent) return // sent already: closeIdle() after it
    if (entry.closing && !entry.closing.headersSent) entry.closing.removeHeader('Connection')
    last.setHeader('Connection', 'close')
    entry.closing = last
  }

  function closeIdle (socket: Socket): void {
    if (socket.destroyed || http1.has(socket)) return
    if (typeof http.closeIdleConnections === 'function') http.closeIdleConnections()
    else socket.end()
  }

  const drain: HttpDrain = {
    get inFlight () {
      let count = http1.size
      for (const streams of sessions.values()) if (streams > 0) count++
      return count
    },
    get requests () {
      let count = 0
      for (const entry of http1.values()) count += entry.responses.length
      for (const streams of sessions.values()) count += streams
      return count
    },
    get connections () {
      let count = 0
      for (const socket of sockets) if (!socket.destroyed) count++ // 'close' comes a loop turn later
      return count
    },
    begin (onChange) {
      if (draining) return
      draining = true
      for (const entry of http1.values()) closeAfterLast(entry)
      if (fallback) {
        for (const socket of fallback) if (!http1.has(socket)) socket.end()
      } else {
        http.closeIdleConnections?.()
      }
      // Graceful GOAWAY: open streams finish, new ones are refused. Never `Connection: close` on HTTP/2
      // responses: a connection-specific header is invalid there (RFC 9113 8.2.2; Node warns).
      for (const session of sessions.keys()) session.close()
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
    destroyAll () {
      changed = undefined
      http.closeAllConnections?.()
      for (const session of sessions.keys()) session.destroy()
      for (const socket of sockets) socket.destroy()
    },
  }
  return drain
}
