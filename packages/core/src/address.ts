// Parses $NOTIFY_SOCKET as sd_notify(3) does: "/path", "@abstract", or "vsock[-stream|-dgram|-seqpacket]:CID:PORT".
import { SdNotifyError } from './errors.js'

/** sizeof(struct sockaddr_un.sun_path) on Linux. */
export const SUN_PATH_BYTES = 108
const AF_UNIX = 1
/** sa_family is in host byte order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

export interface UnixAddress {
  family: 'unix'
  /** The value as given, e.g. `/run/systemd/notify` or `@/org/example/notify`. */
  path: string
  /** An abstract-namespace name (leading `@`): not a file, so only the koffi transport can reach it. */
  abstract: boolean
  /** The exact `struct sockaddr_un` bytes to pass to sendmsg(2) (its length is the addrlen). */
  sockaddr: Buffer
}

export interface VsockAddress {
  family: 'vsock'
  cid: number
  port: number
  /** The socket type named by the prefix; undefined for plain `vsock:` (sd_notify tries DGRAM then SEQPACKET). */
  socketType: 'stream' | 'dgram' | 'seqpacket' | undefined
}

export type NotifyAddress = UnixAddress | VsockAddress

function invalid (value: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_SOCKET', `sdnotify: NOTIFY_SOCKET=${JSON.stringify(value)} ${rule}`, {
    field: 'NOTIFY_SOCKET',
    rule,
  })
}

function uint32 (value: string, part: string, raw: string): number {
  if (!/^\d{1,10}$/.test(part) || Number(part) > 0xffff_ffff) {
    throw invalid(raw, `has a ${value} that is not a number from 0 to 4294967295`)
  }
  return Number(part)
}

export function parseNotifySocket (value: string): NotifyAddress {
  if (typeof value !== 'string' || value.length === 0) throw invalid(String(value), 'is empty')
  const vsock = /^vsock(?:-(stream|dgram|seqpacket))?:(.*)$/.exec(value)
  if (vsock) {
    const rest = vsock[2] ?? ''
    const colon = rest.lastIndexOf(':')
    if (colon < 0) throw invalid(value, 'must have the form vsock:CID:PORT')
    const cidText = rest.slice(0, colon)
    // sd_notify requires a specific CID: an empty one (VMADDR_CID_ANY) is refused with EINVAL.
    if (cidText === '') {
      throw invalid(value, 'must name a CID (vsock:CID:PORT); an empty CID is not allowed for notifications')
    }
    const cid = uint32('CID', cidText, value)
    const port = uint32('port', rest.slice(colon + 1), value)
    return { family: 'vsock', cid, port, socketType: vsock[1] as VsockAddress['socketType'] }
  }
  if (value[0] !== '/' && value[0] !== '@') {
    throw invalid(value, 'must be an absolute path (/…), an abstract name (@…) or vsock:CID:PORT')
  }
  if (value.length < 2) throw invalid(value, 'names no socket')
  if (value.includes('\0')) throw invalid(value, 'must not contain a NUL byte')
  const name = Buffer.from(value, 'utf8')
  // Like systemd's sockaddr_un_set_path(), insist on room for a terminating NUL: at most 107 bytes.
  if (name.length + 1 > SUN_PATH_BYTES) {
    throw invalid(
      value,
      `is ${name.length} bytes long; a unix socket address holds at most ${SUN_PATH_BYTES - 1} ` +
        `(sun_path is ${SUN_PATH_BYTES} bytes)`
    )
  }
  const abstract = value[0] === '@'
  // Abstract names start with a NUL byte instead of '@' and are not NUL-terminated: addrlen covers the name exactly.
  const sockaddr = Buffer.alloc(2 + name.length + (abstract ? 0 : 1))
  if (LITTLE_ENDIAN) sockaddr.writeUInt16LE(AF_UNIX, 0)
  /* c8 ignore next: big-endian hosts only (this machine is x86_64) */
  else sockaddr.writeUInt16BE(AF_UNIX, 0)
  name.copy(sockaddr, 2)
  if (abstract) sockaddr[2] = 0
  return { family: 'unix', path: value, abstract, sockaddr }
}
