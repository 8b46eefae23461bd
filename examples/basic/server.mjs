// A plain node:http service under systemd: READY=1 once listening, a STATUS line, a health-gated watchdog,
// and zero-downtime restarts: the listening socket waits in systemd's fd store (FileDescriptorStoreMax=1)
// while the service restarts. GET /stall blocks the event loop for 10 s, the kind of hang the watchdog exists for.
import { createServer } from 'node:http'
import { createNotifier, findPassedSocket, storeServerSocket } from '@sdnotify/core'

const notifier = createNotifier()
let served = 0

const server = createServer((req, res) => {
  served++
  if (req.url === '/stall') {
    res.end('stalling the event loop for 10 s\n')
    const until = Date.now() + 10_000
    setImmediate(() => {
      while (Date.now() < until) {
        /* wedged */
      }
    })
    return
  }
  res.end(`hello (${served} requests served)\n`)
})

// After a restart: the socket systemd kept in its fd store (or a .socket unit's), if it is still bound where the
// configuration asks; on the first start, or after a configuration change, the port is bound anew.
const config = { port: Number(process.env.PORT || 8080), host: '127.0.0.1' }
const passed = findPassedSocket({ config })
server.listen(passed ? { fd: passed.fd } : config, async () => {
  // FDSTORE=1 before READY=1: the next restart finds the socket there (a no-op without NOTIFY_SOCKET).
  await storeServerSocket(notifier, server, 'http').catch((error) => console.error(`fd store: ${error.message}`))
  const address = server.address()
  const where = typeof address === 'string' ? address : `http://${address.address}:${address.port}`
  await notifier.ready(`Listening on ${where}`)
  notifier.watchdog.start() // no-op unless the unit sets WatchdogSec=
})

// Stop accepting and finish the requests in flight: what arrives meanwhile waits in the stored socket's backlog
// for the next process.
const stop = async () => {
  await notifier.stopping('Shutting down')
  server.close(() => process.exit(0))
  server.closeIdleConnections()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
