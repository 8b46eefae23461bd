// sd_listen_fds_with_names(3): sockets (and files) systemd passed to us, starting at fd 3.
import { invalidField } from './errors.js'
import { type Environment, LISTEN_VARIABLES, systemdVariables, unsetVariables } from './environment.js'
import { closeOnExec, loadedLibc } from './transports/libc.js'

export const SD_LISTEN_FDS_START = 3

/** The name systemd gives the connected notify socket of `OpenFile=…/notify:notify`. */
export const NOTIFY_FD_NAME = 'notify'

/** Descriptors are numbered below fs.nr_open (1,048,576 by default): a larger LISTEN_FDS cannot be real. */
const MAX_LISTEN_FDS = 1_048_576 - SD_LISTEN_FDS_START

/** pidfs's statfs f_type (PID_FS_MAGIC, include/uapi/linux/magic.h). */
const PID_FS_MAGIC = 0x50494446

export interface ListenFd {
  /** The descriptor number; usable as `server.listen({ fd })`. */
  fd: number
  /** From FileDescriptorName= / LISTEN_FDNAMES (sd_listen_fds_with_names gives "unknown" when unnamed). */
  name: string
}

export interface ListenFdsOptions {
  /** Remove LISTEN_FDS, LISTEN_PID, LISTEN_PIDFDID and LISTEN_FDNAMES so that children do not inherit them. */
  unsetEnvironment?: boolean
  /** Only descriptors with this name (e.g. FileDescriptorName=http). */
  name?: string
  env?: Environment
  pid?: number
}

let ownPidfdIdCache: { pid: number; id: bigint | undefined } | undefined

/**
 * The inode id of a pidfd for this process, as libsystemd's pidfd_get_inode_id_self_cached() reads it, or
 * undefined when it cannot be read here. It needs pidfd_open(2), which Node lacks: only through koffi, and only
 * if koffi is loaded already (importing it costs ~50 ms, too much for a synchronous call that most processes
 * make at start-up); then pidfs (Linux ≥ 6.9), whose inode numbers are unique, 64-bit ones (on 32-bit
 * platforms systemd uses file handles instead: not done here).
 */
function ownPidfdId (): bigint | undefined {
  if (ownPidfdIdCache?.pid === process.pid) return ownPidfdIdCache.id
  const libc = loadedLibc()
  if (!libc?.pidfdOpen || (process.arch !== 'x64' && process.arch !== 'arm64')) return undefined
  const fd = libc.pidfdOpen(process.pid, 0)
  if (fd < 0) return undefined
  let id: bigint | undefined
  try {
    const { fstatSync, statfsSync } = process.getBuiltinModule('node:fs')
    // statfs follows /proc/self/fd's link to the pidfd itself: before pidfs, pidfds share one anonymous inode.
    if (statfsSync(`/proc/self/fd/${fd}`).type === PID_FS_MAGIC) id = fstatSync(fd, { bigint: true }).ino
  } catch {
    id = undefined
  } finally {
    libc.close(fd)
  }
  ownPidfdIdCache = { pid: process.pid, id }
  return id
}

/** Every descriptor systemd passed to this process, the `notify` one included. */
export function inheritedFds (env: Environment = process.env, pid = process.pid): ListenFd[] {
  const vars = systemdVariables(env)
  // Is it for us? Like libsystemd's sd_listen_fds(): no LISTEN_PID (systemd always sets it), or another
  // process's, means none: a child that inherited the variables must not take its parent's sockets.
  if (vars.LISTEN_PID === undefined || vars.LISTEN_FDS === undefined) return []
  if (!/^\d+$/.test(vars.LISTEN_PID)) {
    throw invalidField('LISTEN_PID', `must be a process id (got ${JSON.stringify(vars.LISTEN_PID)})`)
  }
  if (Number(vars.LISTEN_PID) !== pid) return []
  // systemd ≥ 258 also names the process by its pidfd inode id, which a reused pid cannot fake.
  if (vars.LISTEN_PIDFDID !== undefined) {
    if (!/^\d+$/.test(vars.LISTEN_PIDFDID) || BigInt(vars.LISTEN_PIDFDID) >= 2n ** 64n) {
      const got = JSON.stringify(vars.LISTEN_PIDFDID)
      throw invalidField('LISTEN_PIDFDID', `must be a pidfd inode id, an unsigned 64-bit number (got ${got})`)
    }
    // As in libsystemd: checked when our own id can be read, accepted when it cannot (see ownPidfdId).
    const own = pid === process.pid ? ownPidfdId() : undefined
    if (own !== undefined && BigInt(vars.LISTEN_PIDFDID) !== own) return []
  }
  if (!/^\d+$/.test(vars.LISTEN_FDS) || Number(vars.LISTEN_FDS) > MAX_LISTEN_FDS) {
    const got = JSON.stringify(vars.LISTEN_FDS)
    throw invalidField('LISTEN_FDS', `must be a count of descriptors up to ${MAX_LISTEN_FDS} (got ${got})`)
  }
  const count = Number(vars.LISTEN_FDS)
  const names = vars.LISTEN_FDNAMES === undefined ? [] : vars.LISTEN_FDNAMES.split(':')
  if (vars.LISTEN_FDNAMES !== undefined && names.length !== count) {
    throw invalidField('LISTEN_FDNAMES', `names ${names.length} descriptors but LISTEN_FDS is ${count}`)
  }
  const fds = Array.from({ length: count }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || 'unknown' }))
  // sd_listen_fds() sets FD_CLOEXEC on every one of them; only koffi can, now or once loaded (see closeOnExec).
  if (pid === process.pid) closeOnExec(fds.map((entry) => entry.fd))
  return fds
}

/**
 * The listening sockets systemd passed (socket activation). The `notify` descriptor of OpenFile= is never
 * among them: it belongs to the notifier.
 */
export function listenFds (options: ListenFdsOptions = {}): ListenFd[] {
  const env = options.env ?? process.env
  const fds = inheritedFds(env, options.pid).filter((entry) => entry.name !== NOTIFY_FD_NAME)
  if (options.unsetEnvironment) unsetVariables(env, LISTEN_VARIABLES)
  return options.name === undefined ? fds : fds.filter((entry) => entry.name === options.name)
}

/** The connected notify descriptor from `OpenFile=/run/systemd/notify:notify` (systemd ≥ 253), if any. */
export function notifyFd (env: Environment = process.env, pid = process.pid): number | undefined {
  return inheritedFds(env, pid).find((entry) => entry.name === NOTIFY_FD_NAME)?.fd
}
