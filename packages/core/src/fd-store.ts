// Zero-downtime restarts: a server's listening socket kept in systemd's file descriptor store.
// systemd.service(5), FileDescriptorStoreMax=: descriptors sent with FDSTORE=1 (sd_notify(3), systemd ≥ 219)
// are kept while a restart job runs (and across crash and watchdog restarts) and passed to the next process
// as LISTEN_FDS/LISTEN_FDNAMES. Connections arriving in between wait in the kernel's backlog instead of
// being refused. The same functions serve socket activation: a .socket unit's descriptors arrive the same way.
import { invalidOption, SdNotifyError } from './errors.js'
import { type Environment, systemdVariables } from './environment.js'
import { listenFds } from './listen-fds.js'
import type { Notifier } from './notifier.js'
import { encodeNotification } from './protocol.js'
import { findExecutable } from './select-transport.js'
import { listeningSocketAddress, type SocketAddress } from './socket-address.js'
import { applyCloseOnExec } from './transports/libc.js'

/** The default FDNAME of a stored listening socket. */
export const DEFAULT_SOCKET_NAME = 'http'

/** What the application asked to listen on; compared with a passed socket's address. */
export interface ListenConfig {
  port?: number | undefined
  host?: string | undefined
  path?: string | undefined
}

export interface PassedSocket {
  /** The descriptor: `server.listen({ fd })`. */
  fd: number
  /** Its FDNAME / FileDescriptorName=. */
  name: string
  address: SocketAddress
}

export interface FindPassedSocketOptions {
  /** Only a socket with this name; default: the first listening socket passed. */
  name?: string | undefined
  /** The address configured for this listener: a passed socket bound elsewhere is not used. */
  config?: ListenConfig | undefined
  /** Where the reason goes when a passed socket is dropped. Default: process.emitWarning. */
  warn?: ((message: string) => void) | undefined
  env?: Environment | undefined
}

/** Names whose stored descriptors no longer match the configuration: FDSTOREREMOVE goes out before the next store. */
const staleNames = new Set<string>()
/** Descriptors handed out by findPassedSocket, so that a second listener does not take the same one. */
const taken = new Set<number>()

const emitWarning = (message: string) => process.emitWarning(message, { code: 'SDNOTIFY_FDSTORE' })

/**
 * The listening socket systemd passed back (from the fd store or a .socket unit) for this listener, or
 * undefined: then bind the configured address as usual. A passed socket bound to another address than
 * `config` asks for (the configuration changed between restarts) is closed, marked for removal from the
 * store (FDSTOREREMOVE=1 on the next storeServerSocket() under that name) and not returned; the reason is
 * logged through `warn`.
 */
export function findPassedSocket (options: FindPassedSocketOptions = {}): PassedSocket | undefined {
  const warn = options.warn ?? emitWarning
  const candidates = listenFds(options.env === undefined ? {} : { env: options.env }).filter(
    (entry) => !taken.has(entry.fd) && (options.name === undefined || entry.name === options.name)
  )
  for (const candidate of candidates) {
    const address = listeningSocketAddress(candidate.fd)
    if (address === undefined) continue // not a listening stream socket (a stored memfd, a datagram socket…)
    const mismatch = options.config && addressMismatch(address, options.config)
    if (mismatch) {
      warn(
        `sdnotify: the passed socket "${candidate.name}" (fd ${candidate.fd}) ${mismatch}: ` +
          'closing it, removing it from the fd store and binding the configured address'
      )
      process.getBuiltinModule('node:fs').closeSync(candidate.fd) // not imported: keeps core's import cheap
      taken.add(candidate.fd)
      staleNames.add(candidate.name)
      continue
    }
    taken.add(candidate.fd)
    return { fd: candidate.fd, name: candidate.name, address }
  }
  return undefined
}

/** Why `address` is not what `config` asks for, or undefined when it is. */
export function addressMismatch (address: SocketAddress, config: ListenConfig): string | undefined {
  const shown = formatSocketAddress(address)
  if (config.path !== undefined) {
    if (address.family === 'unix' && address.path === config.path) return undefined
    return `is bound to ${shown}, the configuration asks for ${config.path}`
  }
  if (address.family === 'unix') return `is bound to ${shown}, the configuration asks for a TCP port`
  const wanted = `${config.host ?? '*'}:${config.port ?? 0}`
  // Port 0 asks for any free port: whatever the stored socket has is as good.
  if (config.port !== undefined && config.port !== 0 && config.port !== address.port) {
    return `is bound to ${shown}, the configuration asks for ${wanted}`
  }
  if (!hostMatches(address.address, config.host)) return `is bound to ${shown}, the configuration asks for ${wanted}`
  return undefined
}

const WILDCARDS = new Set(['0.0.0.0', '::'])
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/

function hostMatches (actual: string, host: string | undefined): boolean {
  // No host: Node binds '::' (or '0.0.0.0' without IPv6).
  if (host === undefined || host === '') return WILDCARDS.has(actual)
  if (host === 'localhost') return LOOPBACK.test(actual)
  const { isIP } = process.getBuiltinModule('node:net')
  if (isIP(host) === 0) return true // a host name: resolving it here would block; the port decides
  if (isIP(host) === 6) return new URL(`http://[${host}]`).hostname.slice(1, -1) === actual
  return host === actual
}

export function formatSocketAddress (address: SocketAddress): string {
  if (address.family === 'unix') return address.path
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
}

/** A server of node:net, node:http, https or http2 (they all keep their listening handle here). */
interface ListeningServer {
  listening: boolean
  _handle?: { fd?: number } | null
}

/** The listening descriptor of a Node server. Node has no public accessor: `_handle.fd` is the libuv fd. */
export function serverFd (server: unknown): number | undefined {
  const fd = (server as ListeningServer | undefined)?._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

let warnedNoStore = false
let warnedNoHandle = false

/**
 * Stores `server`'s listening socket in systemd's fd store under `name` (FDSTORE=1, FDNAME=, FDPOLL=0), after
 * removing a stale one of that name. Resolves false when not under systemd, and (with a warning, once) for a
 * server without a listening descriptor: one not listening yet, or a runtime without Node's server internals
 * (Bun). Needs the koffi transport (fd passing). systemd drops duplicates, so storing again the socket it
 * passed back is harmless.
 */
export async function storeServerSocket (
  notifier: Pick<Notifier, 'enabled' | 'storeFds' | 'removeFds'>,
  server: unknown,
  name: string = DEFAULT_SOCKET_NAME,
  options: { warn?: (message: string) => void; env?: Environment } = {}
): Promise<boolean> {
  if (!notifier.enabled) return false
  const warn = safely(options.warn ?? emitWarning)
  const fd = serverFd(server)
  if (fd === undefined) {
    if (!warnedNoHandle) {
      warnedNoHandle = true
      warn(
        'sdnotify: fdStore needs a listening Node server (no listening descriptor found: not listening yet, or a ' +
          "runtime without Node's server internals, such as Bun): the socket is not stored, and restarts refuse " +
          'connections meanwhile'
      )
    }
    return false
  }
  if (staleNames.delete(name)) await notifier.removeFds(name)
  // FDPOLL=0: a listening socket never reports EPOLLHUP/EPOLLERR that should make systemd drop it.
  const stored = await notifier.storeFds([fd], name, { poll: false })
  // After the store, which loaded koffi: the passed descriptors are close-on-exec before systemctl is spawned.
  warnWithoutStore(warn, options.env).catch(() => undefined)
  return stored
}

/** A warn callback that cannot throw into our promises (a bug in it would be an unhandled rejection). */
function safely (warn: (message: string) => void): (message: string) => void {
  return (message) => {
    try {
      warn(message)
    } catch {
      // nowhere left to report it
    }
  }
}

/** Removes the descriptors stored under `name` (FDSTOREREMOVE=1): the next start binds anew. */
export function removeStoredSocket (
  notifier: Pick<Notifier, 'removeFds'>,
  name: string = DEFAULT_SOCKET_NAME
): Promise<boolean> {
  return notifier.removeFds(name)
}

/**
 * What systemd says about the store: `$FDSTORE` (systemd ≥ 254; verified absent on 252, set on 257) holds
 * FileDescriptorStoreMax= when it is not 0. Older systemd does not say, so `max` is then unknown.
 */
export function fdStoreLimit (env?: Environment): { max: number | undefined; reason: string } {
  const value = systemdVariables(env).FDSTORE
  if (value !== undefined && /^\d+$/.test(value)) {
    return { max: Number(value), reason: `FDSTORE=${value}: FileDescriptorStoreMax=${value}` }
  }
  return {
    max: undefined,
    reason:
      'FDSTORE is not set: the unit has no FileDescriptorStoreMax= (or systemd is older than 254, which does not say)',
  }
}

async function warnWithoutStore (warn: (message: string) => void, env: Environment | undefined): Promise<void> {
  if (warnedNoStore || fdStoreLimit(env).max !== undefined) return
  // Without $FDSTORE the store may still work: systemd < 254 never sets it, and no other variable tells the
  // versions apart (verified: 252 and 257 pass the same ones). So ask systemctl, once, off the start-up path.
  const version = await systemdVersion()
  if (version === undefined || version < 254 || warnedNoStore) return
  warnedNoStore = true
  warn(
    `sdnotify: fdStore is on, but the unit has no FileDescriptorStoreMax= (systemd ${version} sets $FDSTORE when it ` +
      'has): systemd discards the stored socket and restarts refuse connections. Add FileDescriptorStoreMax=1 ' +
      '(one per stored listener) to [Service].'
  )
}

let version: Promise<number | undefined> | undefined

/**
 * The major version `systemctl --version` reports ("systemd 257 (257.9-1)"), or undefined. That is the version
 * of the systemctl binary, not of the running manager: the same in an ordinary installation (one package), but
 * not necessarily in a container or a chroot, or after an upgrade before `systemctl daemon-reexec`. systemctl is
 * looked up in the absolute PATH entries only (never one in the working directory), and the descriptors systemd
 * passed us are marked close-on-exec first, so that it does not inherit them.
 */
export function systemdVersion (): Promise<number | undefined> {
  version ??= (async () => {
    const systemctl = findExecutable('systemctl')
    if (systemctl === undefined) return undefined
    await applyCloseOnExec()
    return new Promise<number | undefined>((resolve) => {
      const { execFile } = process.getBuiltinModule('node:child_process')
      execFile(systemctl, ['--version'], { timeout: 2000, encoding: 'utf8' }, (error, stdout) => {
        const match = /^systemd (\d+)/.exec(String(stdout))
        resolve(error || !match ? undefined : Number(match[1]))
      })
    })
  })()
  return version
}

/** Validates an adapter's `fdStore` option (`true`, `false` or `{ name }`) and returns the name, or undefined. */
export function fdStoreName (value: unknown, option = 'fdStore'): string | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return DEFAULT_SOCKET_NAME
  if (value === null || typeof value !== 'object') throw invalidOption(option, 'must be true, false or { name }')
  const { name } = value as { name?: unknown }
  if (name === undefined) return DEFAULT_SOCKET_NAME
  try {
    encodeNotification({ fdStoreRemove: true, fdName: name as string }) // the protocol's FDNAME rules
  } catch (error) {
    const rule = error instanceof SdNotifyError && error.rule !== undefined ? error.rule : String(error)
    throw invalidOption(`${option}.name`, `${rule} (it is an FDNAME)`)
  }
  return name as string
}
