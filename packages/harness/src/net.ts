import { readlinkSync, realpathSync } from 'node:fs'
import { connect } from 'node:net'

// Test files run in parallel (tap jobs, packages): each process takes its own block of ports, chosen by
// pid, below Linux's ephemeral range (32768+) so that no outgoing connection can be holding one.
const PORTS_PER_PROCESS = 20
let nextPort = 10_000 + (process.pid % 1000) * PORTS_PER_PROCESS

/** A TCP port for a service under test, unique within this process's block. */
export function testPort (): number {
  return nextPort++
}

/** Whether a TCP connect to the port succeeds now: "is the service really listening?" */
export function canConnect (port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** The part of a tap test the assertions below need (the harness does not depend on tap). */
export interface Asserts {
  equal(found: unknown, wanted: unknown, message: string): unknown
}

/** What assertStartsListening needs of a Manager. */
export interface StartingManager {
  systemctl(args: string[]): Promise<{ code: number; stderr: string }>
  show(unit: string): Promise<Record<string, string>>
  /** The host's view of the manager's root ('/' unless chrooted) and the runtime its services run. */
  root?: string
  node?: string
}

/**
 * `systemctl start`, then at once the proof every adapter owes: the start succeeded, a client can
 * connect the moment it returned, the unit is active and its StatusText names the address.
 * Returns the unit's properties for further checks.
 */
export async function assertStartsListening (
  t: Asserts,
  manager: StartingManager,
  unit: string,
  port: number
): Promise<Record<string, string>> {
  const start = await manager.systemctl(['start', unit])
  t.equal(start.code, 0, `systemctl start ${unit} ${start.stderr}`.trim())
  t.equal(await canConnect(port), true, 'a connect right after systemctl start returns succeeds')
  const props = await manager.show(unit)
  t.equal(props.ActiveState, 'active', 'the unit is active')
  t.equal(props.StatusText, `Listening on http://127.0.0.1:${port}`, 'StatusText names the address')
  if (manager.root === '/' && manager.node) {
    // The runtime matrix (SDNOTIFY_SERVICE_RUNTIME) proves nothing unless the app really ran on that runtime.
    const exe = readlinkSync(`/proc/${props.MainPID}/exe`)
    t.equal(exe, realpathSync(manager.node), `the service runs on ${manager.node}`)
  }
  return props
}
