import { type AdapterOptions, SdNotifyError, validateAdapterOptions } from '@sdnotify/core'

const PACKAGE = '@sdnotify/express'

/**
 * The options every @sdnotify adapter shares (see @sdnotify/core's README, "Adapter options"). For
 * Express, `onReload()` runs on SIGHUP under systemd (Type=notify-reload) and `stoppingStatus` gets the
 * signal when `handleSignals` started the stop.
 */
export type SdNotifyServerOptions = AdapterOptions

export interface ListenOptions extends SdNotifyServerOptions {
  port?: number
  host?: string
  backlog?: number
  /** A unix socket path instead of a port. */
  path?: string
  /** With socket activation, the FileDescriptorName= of the socket to use. Default: the first one passed. */
  socketName?: string
}

const LISTEN_OPTIONS = ['port', 'host', 'backlog', 'path', 'socketName']

function invalid (option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `${PACKAGE}: option ${option} ${rule}`, {
    field: option,
    rule,
  })
}

export function validateOptions (options: ListenOptions, listen: boolean): void {
  validateAdapterOptions(PACKAGE, options, listen ? LISTEN_OPTIONS : [])
  const { port, host, path, socketName, backlog } = options
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw invalid('port', 'must be an integer from 0 to 65535')
  }
  if (host !== undefined && typeof host !== 'string') throw invalid('host', 'must be a string')
  if (path !== undefined && (typeof path !== 'string' || path === '')) {
    throw invalid('path', 'must be a non-empty string')
  }
  if (path !== undefined && port !== undefined) throw invalid('path', 'and port cannot both be given')
  if (socketName !== undefined && typeof socketName !== 'string') throw invalid('socketName', 'must be a string')
  if (backlog !== undefined && !(Number.isInteger(backlog) && backlog > 0)) {
    throw invalid('backlog', 'must be a positive integer')
  }
}
