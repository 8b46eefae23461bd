// Which transport to use, and why each other one was not: fd, then koffi, then unix-dgram, then exec.
import type { NotifyAddress, UnixAddress } from './address.js'
import type { Transport, TransportName, TransportOptions } from './transports/transport.js'

export const TRANSPORT_ORDER: readonly TransportName[] = ['fd', 'koffi', 'unix-dgram', 'exec']

export interface TransportPlan {
  name: TransportName
  /** Could be used, as far as can be told without loading anything. */
  usable: boolean
  /** Why it is (or is not) usable; after a failed load, the load error. */
  reason: string
}

export interface SelectionContext {
  notifySocket: string | undefined
  address: NotifyAddress | undefined
  /** Why $NOTIFY_SOCKET could not be parsed, when it could not. */
  addressProblem: string | undefined
  notifyFd: number | undefined
  /** Path of systemd-notify, when found. */
  systemdNotify: string | undefined
}

function unixAddressReason (ctx: SelectionContext): string | undefined {
  if (ctx.notifySocket === undefined) return 'NOTIFY_SOCKET is not set'
  if (ctx.address === undefined) return ctx.addressProblem ?? 'NOTIFY_SOCKET cannot be parsed'
  if (ctx.address.family === 'vsock') {
    return `${ctx.notifySocket} is an AF_VSOCK address; only systemd-notify (exec) sends to those`
  }
  return undefined
}

export function planTransports (ctx: SelectionContext): TransportPlan[] {
  const noUnix = unixAddressReason(ctx)
  const plans: TransportPlan[] = []
  plans.push(
    ctx.notifyFd !== undefined
      ? { name: 'fd', usable: true, reason: `descriptor ${ctx.notifyFd} named "notify" was passed by OpenFile=` }
      : {
          name: 'fd',
          usable: false,
          reason: 'no descriptor named "notify" in LISTEN_FDNAMES (systemd ≥ 253: OpenFile=/run/systemd/notify:notify)',
        }
  )
  plans.push(noUnix
    ? { name: 'koffi', usable: false, reason: noUnix }
    : { name: 'koffi', usable: true, reason: 'optional dependency koffi, loaded on first send' })
  if (noUnix) plans.push({ name: 'unix-dgram', usable: false, reason: noUnix })
  else if (ctx.address?.family === 'unix' && ctx.address.abstract) {
    const reason = `${ctx.notifySocket} is an abstract name, which unix-dgram cannot reach`
    plans.push({ name: 'unix-dgram', usable: false, reason })
  } else {
    const reason = 'unix-dgram, an optional peer dependency (the application installs it), loaded on first send'
    plans.push({ name: 'unix-dgram', usable: true, reason })
  }
  if (ctx.notifySocket === undefined) plans.push({ name: 'exec', usable: false, reason: 'NOTIFY_SOCKET is not set' })
  else if (ctx.systemdNotify === undefined) {
    plans.push({ name: 'exec', usable: false, reason: 'systemd-notify was not found on PATH' })
  } else {
    const reason = `${ctx.systemdNotify} runs as a child process: a non-root service needs NotifyAccess=all`
    plans.push({ name: 'exec', usable: true, reason })
  }
  return plans
}

/**
 * Creates a transport. Each is imported only here, when chosen: importing them all (node:net,
 * node:child_process…) would add tens of ms to every start-up, under systemd or not.
 */
export async function createTransport (
  name: TransportName,
  ctx: SelectionContext,
  options: TransportOptions
): Promise<Transport> {
  switch (name) {
    case 'fd':
      return new (await import('./transports/fd.js')).FdTransport(ctx.notifyFd as number, options)
    case 'koffi':
      return new (await import('./transports/koffi.js')).KoffiTransport(
        { address: ctx.address as UnixAddress },
        options
      )
    case 'unix-dgram':
      return new (await import('./transports/unix-dgram.js')).UnixDgramTransport(ctx.address as UnixAddress, options)
    case 'exec':
      return new (await import('./transports/exec.js')).ExecTransport(
        ctx.systemdNotify as string,
        ctx.notifySocket as string,
        Math.max(options.sendTimeoutMs, 1000)
      )
  }
}

/**
 * Finds an executable on PATH without spawning anything. Only absolute PATH entries count: a relative one
 * (or an empty one, which shells read as ".") would run whatever systemd-notify the working directory holds.
 */
export function findExecutable (command: string, path = process.env.PATH ?? ''): string | undefined {
  // getBuiltinModule: an ESM import of node:fs would add milliseconds to every import of this package.
  const { accessSync, constants } = process.getBuiltinModule('node:fs')
  const directories = path.split(':').filter((dir) => dir.startsWith('/'))
  const candidates = command.includes('/')
    ? [command]
    : directories.map((dir) => `${dir.replace(/\/+$/, '')}/${command}`)
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      /* not here */
    }
  }
  return undefined
}
