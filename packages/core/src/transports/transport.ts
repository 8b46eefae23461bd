export type TransportName = 'fd' | 'koffi' | 'unix-dgram' | 'exec'

export interface TransportCapabilities {
  /** Can send file descriptors (SCM_RIGHTS): needed for FDSTORE=1 and BARRIER=1. */
  fdPassing: boolean
  /** Can reach abstract-namespace socket names (`@…`). */
  abstractNames: boolean
  /** The datagram comes from this process, so NotifyAccess=main (the default) accepts it. */
  ownPid: boolean
}

/** One way of getting a datagram to the service manager. Sends are serialised by the notifier. */
export interface Transport {
  readonly name: TransportName
  readonly capabilities: TransportCapabilities
  /** Delivers one datagram, with `fds` attached when given (only if capabilities.fdPassing). */
  send(message: Buffer, fds?: readonly number[]): Promise<void>
  /**
   * Delivers one datagram synchronously, for last words before the process exits. Only once loaded;
   * a busy queue is retried briefly, then it throws.
   */
  sendSync?(message: Buffer): void
  /**
   * One immediate, non-blocking try (no fds): true when sent, false when the manager's queue is full
   * (the caller then queues the message for the retrying path). Throws on other errors. Only once loaded.
   */
  trySend?(message: Buffer): boolean
  /** Waits until the manager has processed everything sent before (sd_notify_barrier(3)). */
  barrier?(timeoutMs: number): Promise<void>
  /** Releases what the transport holds. Idempotent. */
  close(): void
}

export interface TransportOptions {
  /** How long a send may keep retrying while the manager's queue is full. */
  sendTimeoutMs: number
  /**
   * How long sendSync may retry (it blocks the process meanwhile). Fixed, unlike sendTimeoutMs, which the
   * notifier sets to the time left to the message in flight. Default: min(sendTimeoutMs, 1000).
   */
  sendSyncTimeoutMs?: number
}

/** sendSync's time budget. */
export const syncBudgetMs = (options: TransportOptions): number =>
  options.sendSyncTimeoutMs ?? Math.min(options.sendTimeoutMs, 1000)
