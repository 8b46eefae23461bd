import { type Notifier, type NotifierOptions, SdNotifyError, type ShutdownSignalOptions, validateShutdownSignals, type WatchdogOptions } from '@sdnotify/core'

export interface SdNotifyServerOptions {
  /** A notifier to use; by default one is created from `notifierOptions` (and closed with the server). */
  notifier?: Notifier
  notifierOptions?: NotifierOptions
  /** The STATUS= sent with READY=1. Default: `Listening on <address>`. */
  readyStatus?: (address: string) => string
  /** Watchdog when the unit sets WatchdogSec= (default true); false to never ping. */
  watchdog?: boolean | WatchdogOptions
  /** SIGTERM/SIGINT (or `signals`) → close(), then exit. Default off. Never SIGHUP (systemd reloads with it). */
  handleSignals?: boolean | ShutdownSignalOptions
  /** How long close() waits for requests in flight before closing their connections. Default 10 000 ms. */
  shutdownTimeoutMs?: number
}

export interface ListenOptions extends SdNotifyServerOptions {
  port?: number
  host?: string
  backlog?: number
  /** A unix socket path instead of a port. */
  path?: string
  /** With socket activation, the FileDescriptorName= of the socket to use. Default: the first one passed. */
  socketName?: string
}

const SERVER_OPTIONS = ['notifier', 'notifierOptions', 'readyStatus', 'watchdog', 'handleSignals', 'shutdownTimeoutMs']
const LISTEN_OPTIONS = [...SERVER_OPTIONS, 'port', 'host', 'backlog', 'path', 'socketName']

function invalid(option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `@sdnotify/express: option ${option} ${rule}`, { field: option, rule })
}

export function validateOptions(options: ListenOptions, listen: boolean): void {
  if (options === null || typeof options !== 'object') throw invalid('options', 'must be an object')
  const known = listen ? LISTEN_OPTIONS : SERVER_OPTIONS
  for (const name of Object.keys(options)) if (!known.includes(name)) throw invalid(name, `is unknown (known: ${known.join(', ')})`)
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) throw invalid('port', 'must be an integer from 0 to 65535')
  if (options.host !== undefined && typeof options.host !== 'string') throw invalid('host', 'must be a string')
  if (options.path !== undefined && typeof options.path !== 'string') throw invalid('path', 'must be a string')
  if (options.socketName !== undefined && typeof options.socketName !== 'string') throw invalid('socketName', 'must be a string')
  if (options.backlog !== undefined && !(Number.isInteger(options.backlog) && options.backlog > 0)) throw invalid('backlog', 'must be a positive integer')
  if (options.readyStatus !== undefined && typeof options.readyStatus !== 'function') throw invalid('readyStatus', 'must be a function')
  if (options.shutdownTimeoutMs !== undefined && !(typeof options.shutdownTimeoutMs === 'number' && options.shutdownTimeoutMs > 0)) {
    throw invalid('shutdownTimeoutMs', 'must be a positive number of ms')
  }
  const w = options.watchdog
  if (w !== undefined && typeof w !== 'boolean' && (w === null || typeof w !== 'object')) throw invalid('watchdog', 'must be a boolean or an object of watchdog options')
  validateShutdownSignals(options.handleSignals)
}
