// A Fastify service under systemd: see fastify-example.service beside this file.
import Fastify from 'fastify'
import sdNotify, { systemdListenOptions } from '@sdnotify/fastify'

const app = Fastify({ logger: true })

await app.register(sdNotify, {
  // SIGTERM/SIGINT -> app.close(): STOPPING=1, in-flight requests finish, then exit.
  handleSignals: true,
  // Pings only while the event loop is responsive and this check passes.
  watchdog: { healthCheck: async () => true },
  // systemctl reload (Type=notify-reload sends SIGHUP): RELOADING=1, this, READY=1.
  onReload: async (fastify) => fastify.log.info('reloading configuration'),
})

app.get('/', async (request) => {
  await request.server.sdNotify.status(`Last request at ${new Date().toISOString()}`)
  return { hello: 'world' }
})

// The socket from fastify-example.socket when socket-activated, port 3000 otherwise.
await app.listen(systemdListenOptions({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' }))
