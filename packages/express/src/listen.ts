// listen(app, …): app.listen's arguments, plus readiness, a listen-error report and a graceful close.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { fdStoreName, findPassedSocket, type ListenConfig, passedListenSocket } from '@sdnotify/core'
import { attach, listenErrorReports } from './attach.js'
import { type ListenOptions, validateOptions } from './options.js'

/** An Express app, or any (req, res) handler. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

export type ListenCallback = (error?: Error) => void

/**
 * Like `app.listen(…)`: the same arguments (a port, or a string that is not a number: a unix socket path),
 * or an options object. A listen error goes to the callback once systemd has been told (ERRNO, STATUS);
 * without a callback it is an unhandled 'error' event, as with app.listen(): the process dies of it.
 */
export function listen (app: RequestHandler, options: ListenOptions, callback?: ListenCallback): Server
export function listen (
  app: RequestHandler,
  port?: number | string,
  host?: string | ListenCallback,
  backlog?: number | ListenCallback,
  callback?: ListenCallback,
): Server
export function listen (app: RequestHandler, ...args: unknown[]): Server {
  const callbackIndex = args.findIndex((arg) => typeof arg === 'function')
  const callback = callbackIndex >= 0 ? (args[callbackIndex] as ListenCallback) : undefined
  const positional = callbackIndex >= 0 ? args.slice(0, callbackIndex) : args
  const first = positional[0]
  const options: ListenOptions = first !== null && typeof first === 'object' ? (first) : {}
  validateOptions(options, true)
  const { port, host, backlog, path, socketName, ...serverOptions } = options

  const server = createServer(app)
  attach(server, serverOptions)

  // As app.listen() with a callback (Express 5), a listen error goes to it — here once the report is out,
  // so an app that exits in its callback still leaves the cause in `systemctl status`. The listener is
  // removed once listening: a later server error is the app's to handle, or crashes as without us.
  const onListenError = (error: Error) => {
    const report = listenErrorReports.get(server) ?? Promise.resolve()
    // Out of the promise chain: a callback that throws is an uncaught exception, as from app.listen's emit.
    void report.then(() => process.nextTick(() => callback?.(error)))
  }
  if (callback) server.once('error', onListenError)
  const onListening = () => {
    server.removeListener('error', onListenError)
    callback?.()
  }

  const objectForm = first !== null && typeof first === 'object'
  const activated = passedSocket(options, objectForm ? { port, host, path } : positionalConfig(positional))
  if (activated) server.listen({ fd: activated.fd, ...(backlog === undefined ? {} : { backlog }) }, onListening)
  else if (objectForm) {
    server.listen(path === undefined ? { port: port ?? 0, host, backlog } : { path, backlog }, onListening)
  } else {
    // The positional form goes to server.listen untouched, as app.listen does: Node reads a string that is
    // not a number as a unix socket path ('/run/app.sock'), and a numeric one as a port.
    ;(server.listen as (...listenArgs: unknown[]) => Server)(...positional, onListening)
  }
  return server
}

/**
 * The socket systemd passed back for this listener: with `socketName`, that .socket unit's socket as passed;
 * otherwise the fd store's (with `fdStore`) when it is still bound where `config` asks, or a .socket unit's
 * (core's passedListenSocket has the rules).
 */
function passedSocket (options: ListenOptions, config: ListenConfig) {
  if (options.socketName !== undefined) return findPassedSocket({ name: options.socketName })
  return passedListenSocket({ name: fdStoreName(options.fdStore), config })
}

/** What app.listen's positional arguments ask for: a port and host, or a unix socket path. */
function positionalConfig ([first, second]: unknown[]): ListenConfig {
  if (typeof first === 'string' && Number.isNaN(Number(first))) return { path: first }
  const port = typeof first === 'number' || typeof first === 'string' ? Number(first) : undefined
  return { port, host: typeof second === 'string' ? second : undefined }
}
