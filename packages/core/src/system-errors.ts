import { SdNotifyError } from './errors.js'

let errnoNames: Map<number, string> | undefined

/** EAGAIN, ENOENT… for a positive or negative errno number. */
export function errnoName (errno: number): string {
  // Built on first use, through getBuiltinModule: the notifier imports this module, and an ES import of node:os
  // would cost every import of the package a few ms (DEVELOPERS.md).
  if (errnoNames === undefined) {
    errnoNames = new Map()
    const { constants } = process.getBuiltinModule('node:os')
    for (const [name, value] of Object.entries(constants.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name)
  }
  return errnoNames.get(Math.abs(errno)) ?? `errno ${Math.abs(errno)}`
}

/** The receiver's queue is full: the datagram was not sent, and may be sent again later. */
export function isTransient (name: string | undefined): boolean {
  return name === 'EAGAIN' || name === 'EWOULDBLOCK' || name === 'ENOBUFS' || name === 'EINTR'
}

export function sendFailed (transport: string, errno: string, syscall: string, detail = ''): SdNotifyError {
  let hint = ''
  if (errno === 'ENOENT' || errno === 'ECONNREFUSED') {
    hint = ' (is the service manager running, and is NOTIFY_SOCKET right?)'
  } else if (errno === 'EACCES' || errno === 'EPERM') {
    hint = ' (the notify socket is not writable by this user)'
  }
  const message = `sdnotify: ${transport} transport: ${syscall} failed with ${errno}${hint}${detail}`
  return new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', message, {
    transport,
    errno,
    syscall,
  })
}

/**
 * How long to wait after the n-th refusal in a row (EAGAIN, ENOBUFS…) before trying again. systemd drains a
 * notification in ~100 µs (252): the next turn of the event loop three times, then 1, 2, 4… up to 20 ms, so at
 * most ~60 tries a second while the manager stays frozen. Shared by retryWhileBusy and the notifier's queue.
 */
export function backoffMs (refusals: number): number {
  return refusals <= 3 ? 0 : Math.min(20, 2 ** (refusals - 4))
}

/** Runs `callback` after backoffMs(refusals): setImmediate for 0 (a 0 ms timer waits at least 1 ms). */
export function afterBackoff (refusals: number, callback: () => void): void {
  const ms = backoffMs(refusals)
  if (ms === 0) setImmediate(callback)
  else setTimeout(callback, ms)
}

function stillBusy (error: SdNotifyError, errno: string, timeoutMs: number): SdNotifyError {
  const message = `${error.message}; still busy after retrying for ${timeoutMs} ms`
  const { transport, syscall } = error
  return new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', message, { transport, errno, syscall })
}

/**
 * Calls `attempt` until it succeeds, waiting with a growing back-off while the receiver is busy (EAGAIN,
 * ENOBUFS), for at most `timeoutMs` (on the monotonic clock). Non-transient errors are thrown at once. Never
 * blocks the event loop.
 */
export async function retryWhileBusy (
  attempt: () => string | undefined, // undefined: sent; otherwise the errno name
  fail: (errno: string) => SdNotifyError,
  timeoutMs: number
): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (let refusals = 1; ; refusals++) {
    const errno = attempt()
    if (errno === undefined) return
    if (!isTransient(errno)) throw fail(errno)
    if (performance.now() >= deadline) throw stillBusy(fail(errno), errno, timeoutMs)
    await new Promise<void>((resolve) => afterBackoff(errno === 'EINTR' ? 0 : refusals, resolve))
  }
}

/**
 * retryWhileBusy's synchronous twin, for last words (sendSync): tries again at once while the receiver is busy,
 * for at most `timeoutMs`. It blocks the event loop meanwhile, so callers keep `timeoutMs` short.
 */
export function spinWhileBusy (
  attempt: () => string | undefined,
  fail: (errno: string) => SdNotifyError,
  timeoutMs: number
): void {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const errno = attempt()
    if (errno === undefined) return
    if (!isTransient(errno)) throw fail(errno)
    if (performance.now() >= deadline) throw stillBusy(fail(errno), errno, timeoutMs)
  }
}
