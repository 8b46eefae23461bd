// The variables systemd passes to a service (sd_notify(3), sd_watchdog_enabled(3), sd_listen_fds(3)).
export const NOTIFY_VARIABLES = ['NOTIFY_SOCKET'] as const
export const WATCHDOG_VARIABLES = ['WATCHDOG_USEC', 'WATCHDOG_PID'] as const
export const LISTEN_VARIABLES = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDNAMES'] as const
/** systemd ≥ 254: FileDescriptorStoreMax=, when not 0 (systemd.exec(5), "Environment variables"). */
export const STORE_VARIABLES = ['FDSTORE'] as const

export type Environment = Record<string, string | undefined>

export interface SystemdVariables {
  NOTIFY_SOCKET?: string | undefined
  WATCHDOG_USEC?: string | undefined
  WATCHDOG_PID?: string | undefined
  LISTEN_FDS?: string | undefined
  LISTEN_PID?: string | undefined
  /** The pidfd inode id of the process meant (systemd ≥ 258), beside LISTEN_PID. */
  LISTEN_PIDFDID?: string | undefined
  LISTEN_FDNAMES?: string | undefined
  FDSTORE?: string | undefined
}

const ALL = [...NOTIFY_VARIABLES, ...WATCHDOG_VARIABLES, ...LISTEN_VARIABLES, ...STORE_VARIABLES]

// What process.env held when sdnotify first looked, for this pid. Unsetting the variables (so children do
// not inherit them) must not hide them from a notifier or listenFds() call made later in this process.
let snapshot: { pid: number; values: SystemdVariables } | undefined

/**
 * The systemd variables of `env` (process.env by default, remembered from the first read). Off Linux there is
 * no systemd: none are read, so every call is a no-op there (and nothing native is loaded), whatever the
 * environment says — the packages install and run unchanged on a developer's macOS or Windows machine.
 */
export function systemdVariables (env: Environment = process.env): SystemdVariables {
  const pick = (): SystemdVariables =>
    process.platform === 'linux' ? Object.fromEntries(ALL.map((name) => [name, env[name]])) : {}
  if (env !== process.env) return pick()
  if (snapshot?.pid !== process.pid) snapshot = { pid: process.pid, values: pick() }
  return snapshot.values
}

/** Removes variables from `env` so that child processes do not inherit them (the unset_environment flag). */
export function unsetVariables (env: Environment, names: readonly string[]): void {
  if (env === process.env) systemdVariables(env) // remember them first
  for (const name of names) delete env[name]
}
