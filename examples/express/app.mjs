// An Express service under systemd: see express-example.service beside this file.
import express from 'express'
import { listen } from '@sdnotify/express'

const app = express()
app.get('/', (_req, res) => res.json({ hello: 'world' }))

// READY=1 once listening (or on the socket from express-example.socket); SIGTERM drains and exits.
const options = { port: Number(process.env.PORT ?? 3000), host: '127.0.0.1', handleSignals: true }
const server = listen(app, options, (error) => {
  if (error) {
    console.error(error.message) // systemd already has ERRNO and the cause in StatusText
    process.exit(1)
  }
  console.log('listening on', server.address())
})
