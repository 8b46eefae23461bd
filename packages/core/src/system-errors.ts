import { constants } from 'node:os'
import { SdNotifyError } from './errors.js'

const errnoNames = new Map<number, string>()
for (const [name, value] of Object.entries(constants.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name)

/** EAGAIN, ENOENT… for a positive or negative errno number. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `errno ${Math.abs(errno)}`
}

/** The receiver's queue is full: the datagram was not sent, and may be sent again later. */
export function isTransient(name: string | undefined): boolean {
  return name === 'EAGAIN' || name === 'EWOULDBLOCK' || name === 'ENOBUFS' || name === 'EINTR'
}

export function sendFailed(transport: string, errno: string, syscall: string, detail = ''): SdNotifyError {
  const hint =
    errno === 'ENOENT' || errno === 'ECONNREFUSED'
      ? ' (is the service manager running? It may be re-executing: the next send reconnects)'
      : errno === 'EACCES' || errno === 'EPERM'
        ? ' (the notify socket is not writable by this user)'
        : ''
  return new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', `sdnotify: ${transport} transport: ${syscall} failed with ${errno}${hint}${detail}`, {
    transport,
    errno,
    syscall,
  })
}

const delay = (ms: number) => new Promise<void>((resolve) => (ms === 0 ? setImmediate(resolve) : setTimeout(resolve, ms)))

/**
 * Calls `attempt` until it succeeds, waiting with a growing back-off while the receiver is busy (EAGAIN,
 * ENOBUFS), for at most `timeoutMs`. Non-transient errors are thrown at once. Never blocks the event loop.
 */
export async function retryWhileBusy(
  attempt: () => string | undefined, // undefined: sent; otherwise the errno name
  fail: (errno: string) => SdNotifyError,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let tries = 0; ; tries++) {
    const errno = attempt()
    if (errno === undefined) return
    if (!isTransient(errno)) throw fail(errno)
    if (Date.now() >= deadline) {
      const error = fail(errno)
      throw new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', `${error.message}; still busy after retrying for ${timeoutMs} ms`, {
        transport: error.transport,
        errno,
        syscall: error.syscall,
      })
    }
    // systemd drains a notification in ~100 µs: retry on the next turn first, then back off up to 20 ms.
    await delay(errno === 'EINTR' || tries < 3 ? 0 : Math.min(20, 2 ** (tries - 3)))
  }
}
