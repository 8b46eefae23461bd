// Where a descriptor systemd passed us is bound, and whether it is a listening stream socket: getsockname(2)
// and getsockopt(SO_ACCEPTCONN) through koffi. Node has no way to ask this of a bare descriptor without
// opening a handle on it (server.listen({ fd }) would take it over), and the answer is needed synchronously,
// before the framework listens: libc is bound synchronously here (libc.ts, the one binding), only on this path.
import { invalidField } from './errors.js'
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  type Libc,
  loadLibcSync,
  SO_ACCEPTCONN,
  SO_TYPE,
  SOCK_STREAM,
  SOL_SOCKET,
} from './transports/libc.js'

export type SocketAddress =
  | { family: 'IPv4' | 'IPv6'; address: string; port: number }
  | { family: 'unix'; path: string }

function option (libc: Libc, fd: number, name: number): number | undefined {
  const value = new Int32Array(1)
  const length = new Uint32Array([4])
  return libc.getsockopt(fd, SOL_SOCKET, name, value, length) === 0 ? value[0] : undefined
}

/**
 * The address a passed descriptor listens on, or undefined when it is not a listening stream socket
 * (a closed descriptor, a file, a datagram socket). Throws SdNotifyError when koffi cannot be loaded.
 */
export function listeningSocketAddress (fd: number): SocketAddress | undefined {
  let libc: Libc
  try {
    libc = loadLibcSync()
  } catch (cause) {
    const reason = (cause as { cause?: Error }).cause?.message ?? (cause as Error).message
    throw Object.assign(invalidField('fdStore', `needs koffi to inspect passed sockets (${reason})`), { cause })
  }
  if (option(libc, fd, SO_TYPE) !== SOCK_STREAM || option(libc, fd, SO_ACCEPTCONN) !== 1) return undefined
  const raw = Buffer.alloc(128) // sizeof(struct sockaddr_storage)
  const length = new Uint32Array([raw.length])
  if (libc.getsockname(fd, raw, length) !== 0) return undefined
  return parseSockaddr(raw.subarray(0, length[0]))
}

/** struct sockaddr_in / sockaddr_in6 / sockaddr_un, as getsockname(2) fills it (family in host order). */
export function parseSockaddr (raw: Buffer): SocketAddress | undefined {
  if (raw.length < 2) return undefined
  const family = raw.readUInt16LE(0) // x86-64 and arm64 are little-endian
  if (family === AF_INET && raw.length >= 8) {
    return { family: 'IPv4', address: [...raw.subarray(4, 8)].join('.'), port: raw.readUInt16BE(2) }
  }
  if (family === AF_INET6 && raw.length >= 24) {
    const groups: string[] = []
    for (let i = 8; i < 24; i += 2) groups.push(raw.readUInt16BE(i).toString(16))
    // The WHATWG URL parser prints IPv6 in its canonical, compressed form (RFC 5952).
    const address = new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1)
    return { family: 'IPv6', address, port: raw.readUInt16BE(2) }
  }
  if (family === AF_UNIX) {
    const name = raw.subarray(2)
    if (name[0] === 0) return { family: 'unix', path: '@' + name.subarray(1).toString('utf8') }
    const end = name.indexOf(0)
    return { family: 'unix', path: name.subarray(0, end < 0 ? name.length : end).toString('utf8') }
  }
  return undefined
}
