// A plain node:http service under systemd: READY=1 once listening, a STATUS line, a health-gated watchdog.
// GET /stall blocks the event loop for 10 s, the kind of hang the watchdog exists for.
import { createServer } from 'node:http'
import { createNotifier, listenFds } from '@sdnotify/core'

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

// Socket activation when a .socket unit passed one; a port otherwise.
const [activated] = listenFds()
server.listen(activated ? { fd: activated.fd } : { port: Number(process.env.PORT || 8080), host: '127.0.0.1' }, async () => {
  const address = server.address()
  const where = typeof address === 'string' ? address : `http://${address.address}:${address.port}`
  await notifier.ready(`Listening on ${where}`)
  notifier.watchdog.start() // no-op unless the unit sets WatchdogSec=
})

const stop = async () => {
  await notifier.stopping('Shutting down')
  server.close(() => process.exit(0))
  server.closeIdleConnections()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
