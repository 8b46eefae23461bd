// Helpers for the fd-store tests (issue 12): a unit built for frequent restarts, restarts under a client load,
// and a service process started the way systemd starts it after a restart (a listening socket as fd 3).
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { coverageEnv, type Manager } from './manager.js'
import { type LoadResult, startLoad } from './load.js'

export interface RestartableApp {
  unit: string
  log: string
  port: number
}

/**
 * A Type=notify unit running `script` (as nobody, listening on $PORT) for restart tests:
 * FileDescriptorStoreMax=`store` (0: none, plain Type=notify), Restart=on-failure without delay, and
 * `[Unit] StartLimitIntervalSec=0`: the default 5 starts per 10 s would fail a unit restarted this often, and
 * a failed unit loses its fd store.
 */
export async function restartableApp (
  sd: Manager,
  script: string,
  env: Record<string, string>,
  options: { store?: number; lines?: string[] } = {}
): Promise<RestartableApp> {
  const { store = 1, lines = [] } = options
  const service = [
    ...(store > 0 ? [`FileDescriptorStoreMax=${store}`] : []),
    'Restart=on-failure',
    'RestartSec=0',
    'TimeoutStopSec=10s',
    ...lines,
  ]
  const { unit, log, port } = await sd.notifyApp(script, env, service)
  const text = readFileSync(sd.path(`/run/user/0/systemd/user/${unit}`), 'utf8')
  sd.writeUnit(unit, text.replace('[Unit]', '[Unit]\nStartLimitIntervalSec=0'))
  await sd.daemonReload()
  return { unit, log, port }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Starts `unit`, then `count` restarts made by `restart(i)`, each followed by 400 ms of service, while 4
 * clients per port make fresh connections. Returns one load result per port and the unit's properties at the
 * end (ActiveState, NRestarts, NFileDescriptorStore, Result); the unit is stopped.
 */
export async function restartsUnderLoad (
  sd: Manager,
  unit: string,
  ports: number[],
  restart: (i: number) => Promise<unknown>,
  count = 5
): Promise<{ results: LoadResult[]; props: Record<string, string> }> {
  const start = await sd.systemctl(['start', unit])
  if (start.code !== 0) throw new Error(`start failed: ${start.stderr}`)
  const loads = ports.map((port) => startLoad({ port }))
  await sleep(300)
  for (let i = 0; i < count; i++) {
    await restart(i)
    await sleep(400)
  }
  const results = await Promise.all(loads.map((load) => load.stop()))
  const props = await sd.show(unit, ['ActiveState', 'NRestarts', 'NFileDescriptorStore', 'Result'])
  await sd.systemctl(['stop', unit])
  return { results, props }
}

/** A crash (`SIGUSR1`: the fixtures exit 1) or a wedged event loop (`SIGUSR2`: the watchdog kills it), in turn. */
export async function crashOrWedge (sd: Manager, unit: string, i: number): Promise<void> {
  const { MainPID } = await sd.show(unit, ['MainPID'])
  process.kill(Number(MainPID), i % 2 === 0 ? 'SIGUSR1' : 'SIGUSR2')
  const back = (p: Record<string, string>) => p.MainPID !== MainPID && p.MainPID !== '0' && p.ActiveState === 'active'
  await sd.waitFor(unit, back, 15_000, ['MainPID', 'ActiveState'])
}

export interface ServiceProcess {
  child: ChildProcess
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string | null>
  /** What it wrote to stderr so far. */
  stderr(): string
}

/**
 * Runs `node script` with `env` as systemd starts a service after a restart: `passed.fd` (a listening socket of
 * the caller's) becomes its fd 3, with LISTEN_FDS=1 and LISTEN_FDNAMES=`passed.name`. LISTEN_PID cannot be
 * known before the spawn: the script sets it from SDN_LISTEN_PID_SELF=1. Without tap's NODE_OPTIONS hooks.
 * Spawned asynchronously, so that a fake manager in the caller keeps reading its socket.
 */
export function spawnService (
  script: string,
  env: Record<string, string>,
  passed?: { fd: number; name: string }
): ServiceProcess {
  const listen = passed ? { LISTEN_FDS: '1', LISTEN_FDNAMES: passed.name, SDN_LISTEN_PID_SELF: '1' } : {}
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, script], {
    stdio: ['ignore', 'ignore', 'pipe', ...(passed ? [passed.fd] : [])],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...coverageEnv(), ...listen, ...env },
  })
  let stderr = ''
  child.stderr?.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise<number | string | null>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal))
  })
  return { child, exited, stderr: () => stderr }
}
