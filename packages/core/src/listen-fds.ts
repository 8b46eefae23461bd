// sd_listen_fds_with_names(3): sockets (and files) systemd passed to us, starting at fd 3.
import { invalidField } from './errors.js'
import { type Environment, LISTEN_VARIABLES, systemdVariables, unsetVariables } from './environment.js'

export const SD_LISTEN_FDS_START = 3

/** The name systemd gives the connected notify socket of `OpenFile=…/notify:notify`. */
export const NOTIFY_FD_NAME = 'notify'

export interface ListenFd {
  /** The descriptor number; usable as `server.listen({ fd })`. */
  fd: number
  /** From FileDescriptorName= / LISTEN_FDNAMES (sd_listen_fds_with_names gives "unknown" when unnamed). */
  name: string
}

export interface ListenFdsOptions {
  /** Remove LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES so that children do not inherit them. */
  unsetEnvironment?: boolean
  /** Only descriptors with this name (e.g. FileDescriptorName=http). */
  name?: string
  env?: Environment
  pid?: number
}

/** Every descriptor systemd passed to this process, the `notify` one included. */
export function inheritedFds(env: Environment = process.env, pid = process.pid): ListenFd[] {
  const vars = systemdVariables(env)
  if (vars.LISTEN_FDS === undefined) return []
  // Is it for us? A child that inherited the variables must not take its parent's sockets.
  if (vars.LISTEN_PID !== undefined) {
    if (!/^\d+$/.test(vars.LISTEN_PID)) throw invalidField('LISTEN_PID', `must be a process id (got ${JSON.stringify(vars.LISTEN_PID)})`)
    if (Number(vars.LISTEN_PID) !== pid) return []
  }
  if (!/^\d+$/.test(vars.LISTEN_FDS)) throw invalidField('LISTEN_FDS', `must be a count of descriptors (got ${JSON.stringify(vars.LISTEN_FDS)})`)
  const count = Number(vars.LISTEN_FDS)
  const names = vars.LISTEN_FDNAMES === undefined ? [] : vars.LISTEN_FDNAMES.split(':')
  if (vars.LISTEN_FDNAMES !== undefined && names.length !== count) {
    throw invalidField('LISTEN_FDNAMES', `names ${names.length} descriptors but LISTEN_FDS is ${count}`)
  }
  return Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' }))
}

/**
 * The listening sockets systemd passed (socket activation). The `notify` descriptor of OpenFile= is never
 * among them: it belongs to the notifier.
 */
export function listenFds(options: ListenFdsOptions = {}): ListenFd[] {
  const env = options.env ?? process.env
  const fds = inheritedFds(env, options.pid).filter((entry) => entry.name !== NOTIFY_FD_NAME)
  if (options.unsetEnvironment) unsetVariables(env, LISTEN_VARIABLES)
  return options.name === undefined ? fds : fds.filter((entry) => entry.name === options.name)
}

/** The connected notify descriptor from `OpenFile=/run/systemd/notify:notify` (systemd ≥ 253), if any. */
export function notifyFd(env: Environment = process.env, pid = process.pid): number | undefined {
  return inheritedFds(env, pid).find((entry) => entry.name === NOTIFY_FD_NAME)?.fd
}
