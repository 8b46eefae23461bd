// listen(app, …): app.listen's arguments, plus readiness, a listen-error report and a graceful close.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { listenFds } from '@sdnotify/core'
import { attach, listenErrorReports } from './attach.js'
import { type ListenOptions, validateOptions } from './options.js'

/** An Express app, or any (req, res) handler. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

export type ListenCallback = (error?: Error) => void

export function listen(app: RequestHandler, options: ListenOptions, callback?: ListenCallback): Server
export function listen(app: RequestHandler, port?: number | string, host?: string | ListenCallback, backlog?: number | ListenCallback, callback?: ListenCallback): Server
export function listen(app: RequestHandler, ...args: unknown[]): Server {
  const callbackIndex = args.findIndex((arg) => typeof arg === 'function')
  const callback = callbackIndex >= 0 ? (args[callbackIndex] as ListenCallback) : undefined
  const positional = callbackIndex >= 0 ? args.slice(0, callbackIndex) : args
  const options: ListenOptions =
    positional[0] !== null && typeof positional[0] === 'object'
      ? (positional[0] as ListenOptions)
      : { port: positional[0] === undefined ? 0 : Number(positional[0]), ...(positional[1] === undefined ? {} : { host: positional[1] as string }), ...(positional[2] === undefined ? {} : { backlog: positional[2] as number }) }
  validateOptions(options, true)
  const { port, host, backlog, path, socketName, ...serverOptions } = options

  const server = createServer(app)
  attach(server, serverOptions)

  // As Express 5: a listen error goes to the callback. Here it comes after systemd has been told (ERRNO,
  // STATUS), so an app that exits in its callback still leaves the cause in `systemctl status`.
  let done = false
  const finish = (error?: Error) => {
    if (done) return
    done = true
    if (callback) {
      if (error) callback(error)
      else callback()
    } else if (error) {
      server.removeListener('error', onError)
      server.emit('error', error) // no callback: unhandled, exactly as app.listen() without one
    }
  }
  const onError = (error: Error) => {
    if (server.listening) return
    void (listenErrorReports.get(server) ?? Promise.resolve()).then(() => finish(error))
  }
  server.on('error', onError)

  const [activated] = listenFds(socketName === undefined ? {} : { name: socketName })
  const target = activated ? { fd: activated.fd } : path !== undefined ? { path, backlog } : { port, host, backlog }
  server.listen(target, () => finish())
  return server
}
