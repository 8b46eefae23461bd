/** Every error sdnotify raises. `code` is stable; match on it, not on the message. */
export type SdNotifyErrorCode =
  | 'ERR_SDNOTIFY_INVALID_FIELD' // a notification field broke a protocol rule
  | 'ERR_SDNOTIFY_INVALID_OPTION' // an option passed to createNotifier / watchdog.start broke a rule
  | 'ERR_SDNOTIFY_INVALID_SOCKET' // $NOTIFY_SOCKET cannot be used
  | 'ERR_SDNOTIFY_NO_SOCKET' // strict mode and not running under systemd
  | 'ERR_SDNOTIFY_UNSUPPORTED' // the chosen transport cannot do what was asked (e.g. pass fds)
  | 'ERR_SDNOTIFY_SEND_FAILED' // the transport failed to deliver the datagram
  | 'ERR_SDNOTIFY_TIMEOUT' // a barrier or a retried send ran out of time
  | 'ERR_SDNOTIFY_CLOSED' // the notifier was closed

export interface SdNotifyErrorDetails {
  /** The notification field or option at fault, e.g. `STATUS` or `watchdog.healthCheckTimeoutMs`. */
  field?: string
  /** The rule that was broken, in words. */
  rule?: string
  /** The transport in use when a send failed. */
  transport?: string
  /** The errno name (EAGAIN, ECONNREFUSED, …) of a failed system call. */
  errno?: string
  syscall?: string
  cause?: unknown
}

export class SdNotifyError extends Error {
  readonly code: SdNotifyErrorCode
  readonly field: string | undefined
  readonly rule: string | undefined
  readonly transport: string | undefined
  readonly errno: string | undefined
  readonly syscall: string | undefined

  constructor (code: SdNotifyErrorCode, message: string, details: SdNotifyErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'SdNotifyError'
    this.code = code
    this.field = details.field
    this.rule = details.rule
    this.transport = details.transport
    this.errno = details.errno
    this.syscall = details.syscall
  }
}

/** A field (or option) that broke a rule: the message names both. */
export function invalidField (field: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_FIELD', `sdnotify: ${field} ${rule}`, { field, rule })
}

export function invalidOption (option: string, rule: string): SdNotifyError {
  return new SdNotifyError('ERR_SDNOTIFY_INVALID_OPTION', `sdnotify: option ${option} ${rule}`, {
    field: option,
    rule,
  })
}
