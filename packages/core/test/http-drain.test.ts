// The graceful drain against real node:http, https and http2 servers (TLS and cleartext) and real clients.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import {
  Agent as HttpAgent,
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import {
  connect as http2Connect,
  createSecureServer,
  createServer as createH2cServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2'
import { Agent as HttpsAgent, createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import { connect as netConnect, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { trackHttpConnections } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'sdnotify-drain-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ],
  { stdio: 'ignore' }
)
const tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }

type Protocol = 'http' | 'https' | 'h2' | 'h2c' | 'h2-http1'
type Req = IncomingMessage | Http2ServerRequest
type Res = ServerResponse | Http2ServerResponse

interface Harness {
  server: Server & { keepAliveTimeout?: number }
  port: number
  /** Resolves when the server has received `count` requests in total. */
  received: (count: number) => Promise<void>
}

async function serve (protocol: Protocol): Promise<Harness> {
  let count = 0
  const waiters: (() => void)[] = []
  const handler = (req: Req, res: Res) => {
    count++
    waiters.splice(0).forEach((wake) => wake())
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/slow') setTimeout(() => res.end('slow done'), Number(url.searchParams.get('ms') ?? 500))
    else if (url.pathname !== '/hang') res.end('ok') // /hang is never answered
  }
  const server = {
    http: () => createHttpServer(handler),
    https: () => createHttpsServer(tls, handler),
    h2: () => createSecureServer(tls, handler),
    h2c: () => createH2cServer(handler),
    'h2-http1': () => createSecureServer({ ...tls, allowHTTP1: true }, handler as never),
  }[protocol]() as unknown as Harness['server']
  // Without the drain, a connection left open would hold server.close() for a minute: the test would time out.
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const received = async (wanted: number) => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the handler counts the requests during the await
    while (count < wanted) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  return { server, port: (server.address() as { port: number }).port, received }
}

interface Response {
  status: number
  body: string
  connection?: string | undefined
}

/** A client keeping its connection alive: HTTP/1.1 with a keep-alive agent, or one HTTP/2 session. */
function client (protocol: Protocol, port: number) {
  if (protocol === 'h2' || protocol === 'h2c') {
    const session = http2Connect(`${protocol === 'h2' ? 'https' : 'http'}://127.0.0.1:${port}`, {
      rejectUnauthorized: false,
    })
    session.on('error', () => undefined) // seen through the streams
    return {
      get: (path: string) =>
        new Promise<Response>((resolve, reject) => {
          const stream = session.request({ ':path': path })
          let body = ''
          let status = 0
          stream.on('response', (headers) => (status = Number(headers[':status'])))
          stream.on('data', (chunk) => (body += chunk))
          stream.on('error', reject)
          stream.on('close', () => {
            if (stream.rstCode === 0 && status > 0) resolve({ status, body })
            else reject(new Error(`stream closed with code ${stream.rstCode} before a response`))
          })
          stream.resume()
        }),
      close: () => session.destroy(),
    }
  }
  const secure = protocol !== 'http'
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false })
    : new HttpAgent({ keepAlive: true, maxSockets: 1 })
  return {
    agent,
    get: (path: string) =>
      new Promise<Response>((resolve, reject) => {
        const req = (secure ? httpsRequest : httpRequest)({ host: '127.0.0.1', port, path, agent }, (res) => {
          let body = ''
          res.on('data', (chunk) => (body += chunk))
          res.on('end', () => resolve({ status: res.statusCode as number, body, connection: res.headers.connection }))
        })
        req.on('error', reject)
        req.end()
      }),
    close: () => agent.destroy(),
  }
}

function closed (server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

const warnings: string[] = []
process.on('warning', (warning) => warnings.push(`${warning.name}: ${warning.message}`))

for (const protocol of ['http', 'https', 'h2', 'h2c', 'h2-http1'] as const) {
  t.test(
    `${protocol}: a slow request in flight completes; the close does not wait for keep-alive`,
    { timeout: 20_000 },
    async (t) => {
      const { server, port, received } = await serve(protocol)
      const drain = trackHttpConnections(server)
      const c = client(protocol, port)
      t.teardown(() => c.close())
      t.same(await c.get('/fast'), {
        status: 200,
        body: 'ok',
        ...(protocol.startsWith('h2') && protocol !== 'h2-http1' ? {} : { connection: 'keep-alive' }),
      })
      const slow = c.get('/slow?ms=500')
      await received(2)
      t.equal(drain.inFlight, 1, 'one connection carries a request in flight')
      t.equal(drain.requests, 1)
      const counts: number[] = []
      drain.begin((count) => counts.push(count))
      const done = closed(server)
      const response = await slow
      t.equal(response.status, 200)
      t.equal(response.body, 'slow done', 'not reset')
      if (protocol === 'http' || protocol === 'https' || protocol === 'h2-http1') {
        t.equal(response.connection, 'close', 'HTTP/1: the client is told not to reuse it')
      }
      await done
      await new Promise((resolve) => setImmediate(resolve))
      t.same(counts, [0], 'the count followed the drain')
      t.equal(drain.connections, 0)
    }
  )
}

t.test('http2: no connection-specific header on HTTP/2 responses (Node would warn)', (t) => {
  t.same(
    warnings.filter((w) => /connection/i.test(w)),
    []
  )
  t.end()
})

for (const protocol of ['http', 'https'] as const) {
  t.test(
    `${protocol}: idle keep-alive connections end at once; a pipelined request during the stop is answered`,
    { timeout: 20_000 },
    async (t) => {
      const { server, port, received } = await serve(protocol)
      const drain = trackHttpConnections(server)
      const idle = client(protocol, port)
      t.teardown(() => idle.close())
      await idle.get('/fast')
      t.equal(drain.connections, 1)

      // Raw keep-alive client: GET /slow, then (once the stop has begun) GET /fast on the same connection.
      const socket =
        protocol === 'https'
          ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
          : netConnect(port, '127.0.0.1')
      let raw = ''
      const errors: Error[] = []
      socket.on('data', (chunk: Buffer) => (raw += chunk.toString()))
      socket.on('error', (error: Error) => errors.push(error))
      const ended = new Promise((resolve) => socket.on('close', resolve))
      socket.write('GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
      await received(2)
      drain.begin()
      const done = closed(server)
      socket.write('GET /fast HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
      await ended
      await done
      await new Promise((resolve) => setImmediate(resolve))
      t.same(errors, [], 'no reset')
      const responses = raw.split(/(?=HTTP\/1\.1 )/)
      t.equal(responses.length, 2, 'both requests answered')
      t.match(responses[0], /^HTTP\/1\.1 200 OK\r\n[^]*slow done$/)
      t.notMatch(responses[0], /Connection: close/i, 'the first keeps the connection for the second')
      t.match(responses[1], /^HTTP\/1\.1 200 OK\r\n[^]*Connection: close\r\n[^]*ok$/, 'the last one closes it')
      t.equal(drain.connections, 0, 'the idle keep-alive connection was ended too')
    }
  )
}

t.test(
  'http: a response sent with keep-alive before the drain began: its connection ends after it',
  { timeout: 20_000 },
  async (t) => {
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }) // headers out now, body later
      setTimeout(() => res.end('late body'), 300)
    })
    server.keepAliveTimeout = 60_000
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const drain = trackHttpConnections(server)
    const c = client('http', (server.address() as { port: number }).port)
    t.teardown(() => c.close())
    const response = c.get('/')
    await new Promise((resolve) => server.once('request', resolve))
    await new Promise((resolve) => setTimeout(resolve, 50))
    drain.begin()
    const done = closed(server)
    t.same(await response, { status: 200, body: 'late body', connection: 'keep-alive' })
    await done
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(drain.connections, 0)
  }
)

for (const protocol of ['http', 'https', 'h2'] as const) {
  t.test(`${protocol}: destroyAll() cuts off what is still running`, { timeout: 20_000 }, async (t) => {
    const { server, port, received } = await serve(protocol)
    const drain = trackHttpConnections(server)
    const c = client(protocol, port)
    t.teardown(() => c.close())
    const hanging = c.get('/hang').then(
      () => 'answered',
      () => 'cut off'
    )
    await received(1)
    drain.begin()
    const done = closed(server)
    drain.destroyAll()
    t.equal(await hanging, 'cut off')
    await done
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(drain.connections, 0)
  })
}
