// A private systemd user manager for tests and the demo (see DEVELOPERS.md, "Testing against real systemd").
// - It runs in a dedicated cgroup (never the root cgroup, never a cgroup namespace: systemd would then move
//   every host process, PID 1 included, into init.scope).
// - It runs in a private mount namespace with a tmpfs on /run, optionally chrooted into a Debian root
//   (for newer systemd). We drive it from outside: `nsenter --mount --root` for systemctl, and
//   /proc/<pid>/root/… for files, so the calling process never changes namespace.
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { testPort } from './net.js'

const HIERARCHIES = ['systemd', 'unified', 'memory', 'pids', 'cpu']
export const RUNTIME_DIR = '/run/user/0'
/** The user we run services as: nobody. */
export const SERVICE_UID = 65534

export interface ManagerOptions {
  /** A Debian root (see ensureDebianRoot) to chroot into; default: the host's systemd. */
  root?: string
  /** Host folders to make visible at the same path inside the root (the repository, temp dirs). */
  binds?: string[]
}

/**
 * What services of a host-systemd (252) manager run: $SDNOTIFY_SERVICE_RUNTIME, a Node or Bun binary that nobody
 * can execute (the runtime matrix, scripts/runtime-matrix.mjs), else this process's node. The Debian root's
 * managers always use the root's /usr/bin/node.
 */
export const SERVICE_RUNTIME = process.env.SDNOTIFY_SERVICE_RUNTIME || process.execPath

/** What SERVICE_RUNTIME is: its Node ABI (`process.versions.modules`), the Node version it reports, Bun's version. */
export interface ServiceRuntime {
  path: string
  modules: string
  node: string
  bun?: string
}

let probed: ServiceRuntime | undefined

/** Probes SERVICE_RUNTIME once (it must run here); this process's own versions when it is this node. */
export function serviceRuntime (): ServiceRuntime {
  if (probed) return probed
  if (SERVICE_RUNTIME === process.execPath) {
    probed = { path: SERVICE_RUNTIME, modules: process.versions.modules, node: process.versions.node }
    return probed
  }
  const script = 'const v = process.versions; JSON.stringify({ modules: v.modules, node: v.node, bun: v.bun })'
  const probe = spawnSync(SERVICE_RUNTIME, ['-p', script], { encoding: 'utf8' })
  if (probe.status !== 0) {
    throw new Error(`SDNOTIFY_SERVICE_RUNTIME=${SERVICE_RUNTIME} does not run: ${probe.error ?? probe.stderr}`)
  }
  probed = { path: SERVICE_RUNTIME, ...(JSON.parse(probe.stdout) as Omit<ServiceRuntime, 'path'>) }
  return probed
}

/**
 * Why a native addon built for this node (unix-dgram, compiled by node-gyp at install) cannot load in
 * SERVICE_RUNTIME, or undefined when it can: both must have the same `process.versions.modules` (Bun has its own).
 */
export function serviceAddonSkipReason (): string | undefined {
  const { modules, path } = serviceRuntime()
  if (modules === process.versions.modules) return undefined
  const ours = `ABI ${process.versions.modules} (node ${process.version})`
  return `native addons are built for ${ours}, ${path} has ABI ${modules}`
}

/**
 * `reason`, naming the Bun version, when SERVICE_RUNTIME is Bun (for a test of something Bun lacks); else undefined.
 */
export function bunSkipReason (reason: string): string | undefined {
  const { bun } = serviceRuntime()
  return bun ? `not applicable on Bun ${bun}: ${reason}` : undefined
}

/** Why the systemd tests cannot run here, or undefined when they can. */
export function systemdSkipReason (options: { root?: string } = {}): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux'
  if (process.getuid?.() !== 0) {
    return 'needs root (it creates cgroups and a mount namespace for a private systemd manager)'
  }
  const root = options.root ?? '/'
  if (!existsSync(join(root, 'lib/systemd/systemd'))) return `no systemd at ${join(root, 'lib/systemd/systemd')}`
  for (const tool of ['/usr/bin/unshare', '/usr/bin/nsenter', '/usr/bin/setpriv']) {
    if (!existsSync(tool)) return `${tool} is missing (util-linux)`
  }
  if (!existsSync('/sys/fs/cgroup/systemd') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    return 'no cgroup hierarchy for systemd'
  }
  return undefined
}

interface RunResult { code: number; stdout: string; stderr: string }

function run (command: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      let code = 0
      if (error) code = typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1
      resolve({ code, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface ServiceOptions {
  /** Lines of [Service], without ExecStart. */
  service?: string[]
  /** Extra lines for [Unit]. */
  unit?: string[]
  /** Run as nobody through setpriv (User= does not work in a user manager). Default true. */
  asNobody?: boolean
}

export class Manager {
  readonly pid: number
  readonly root: string
  readonly cgroup: string
  /** A folder on the host, writable by the service user and visible at the same path inside the root. */
  readonly scratch: string
  /** The node binary services use (inside the root; SERVICE_RUNTIME on the host). */
  readonly node: string
  readonly version: number
  private readonly child: ChildProcess
  private readonly log: string[]
  private stopped = false

  constructor (init: {
    child: ChildProcess
    root: string
    cgroup: string
    scratch: string
    log: string[]
    version: number
    node: string
  }) {
    this.child = init.child
    this.pid = init.child.pid as number
    this.root = init.root
    this.cgroup = init.cgroup
    this.scratch = init.scratch
    this.log = init.log
    this.version = init.version
    this.node = init.node
  }

  /** A path inside the manager's view (its /run is private). */
  path (inside: string): string {
    return `/proc/${this.pid}/root${inside}`
  }

  get notifySocket (): string {
    return `${RUNTIME_DIR}/systemd/notify`
  }

  writeUnit (name: string, text: string): void {
    const dir = this.path(`${RUNTIME_DIR}/systemd/user`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, name), text)
  }

  /** Writes NAME.service running `node script args…` (as nobody by default) and reloads the manager. */
  async writeService (name: string, script: string, args: string[], options: ServiceOptions = {}): Promise<void> {
    const command = [this.node, script, ...args].map(quote).join(' ')
    const exec = options.asNobody === false
      ? command
      : `/usr/bin/setpriv --reuid=${SERVICE_UID} --regid=${SERVICE_UID} --clear-groups ${command}`
    this.writeUnit(
      `${name}.service`,
      [
        '[Unit]',
        `Description=sdnotify test ${name}`,
        ...(options.unit ?? []),
        '',
        '[Service]',
        `ExecStart=${exec}`,
        ...(options.service ?? []),
        '',
      ].join('\n')
    )
    await this.daemonReload()
  }

  private services = 0

  /**
   * A Type=notify service running `node script` as nobody with `env` (plus `logVariable`, default SDN_LOG:
   * the file it appends its events to) and extra [Service] `lines`. Its stderr goes to <scratch>/<name>.err.
   */
  async notifyService (
    script: string,
    env: Record<string, string>,
    lines: string[] = [],
    prefix = 'svc',
    logVariable = 'SDN_LOG'
  ): Promise<{ unit: string; log: string; name: string }> {
    const name = `${prefix}${++this.services}`
    const log = `${this.scratch}/${name}.log`
    const environment = Object.entries({ [logVariable]: log, ...env }).map(([k, v]) => `"${k}=${v}"`).join(' ')
    await this.writeService(name, script, [], {
      service: [
        'Type=notify',
        `Environment=${environment}`,
        'TimeoutStartSec=15s',
        `StandardError=append:${this.scratch}/${name}.err`,
        ...lines,
      ],
    })
    return { unit: `${name}.service`, log, name }
  }

  /** notifyService() for an app that listens on $PORT: a fresh port from testPort() is passed and returned. */
  async notifyApp (
    script: string,
    env: Record<string, string> = {},
    lines: string[] = [],
    prefix = 'app',
    logVariable = 'SDN_LOG'
  ): Promise<{ unit: string; log: string; name: string; port: number }> {
    const port = testPort()
    return { ...(await this.notifyService(script, { PORT: String(port), ...env }, lines, prefix, logVariable)), port }
  }

  async daemonReload (): Promise<void> {
    const result = await this.systemctl(['daemon-reload'])
    if (result.code !== 0) throw new Error(`daemon-reload failed: ${result.stderr}`)
  }

  systemctl (args: string[], timeoutMs = 120_000): Promise<RunResult> {
    const env = ['/usr/bin/env', '-i', `XDG_RUNTIME_DIR=${RUNTIME_DIR}`, 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']
    const nsenter = ['-t', String(this.pid), '-m', '-r', '--']
    return run('/usr/bin/nsenter', [...nsenter, ...env, 'systemctl', '--user', ...args], timeoutMs)
  }

  async show (
    unit: string,
    properties = ['ActiveState', 'SubState', 'Result', 'StatusText', 'StatusErrno', 'MainPID', 'NRestarts']
  ): Promise<Record<string, string>> {
    const result = await this.systemctl(['show', unit, '-p', properties.join(',')])
    const out: Record<string, string> = {}
    for (const line of result.stdout.split('\n')) {
      const eq = line.indexOf('=')
      if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1)
    }
    return out
  }

  /** Polls `show` until `predicate` holds; returns the last properties either way. */
  async waitFor (
    unit: string,
    predicate: (p: Record<string, string>) => boolean,
    timeoutMs = 20_000,
    properties?: string[]
  ): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs
    let props = await this.show(unit, properties)
    while (!predicate(props) && Date.now() < deadline) {
      await sleep(100)
      props = await this.show(unit, properties)
    }
    return props
  }

  /** What the manager printed (its log goes to stderr: there is no journald). */
  managerLog (): string {
    return this.log.join('')
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM')
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      await Promise.race([exited, sleep(5000)])
    }
    removeCgroup(this.cgroup)
    try {
      collectCoverage(join(this.scratch, 'coverage'))
    } finally {
      rmSync(this.scratch, { recursive: true, force: true })
    }
  }
}

/**
 * Where V8 coverage of code run outside the test process goes, or undefined when nobody collects it:
 * $NODE_V8_COVERAGE (c8, Node's own), else tap's folder when tap collects (its processinfo hooks set
 * _TAPJS_PROCESSINFO_COVERAGE_=1 and write <project>/.tap/coverage/*.json in the format Node writes).
 */
export function coverageDirectory (): string | undefined {
  if (process.env.NODE_V8_COVERAGE) return resolve(process.env.NODE_V8_COVERAGE)
  if (process.env._TAPJS_PROCESSINFO_COVERAGE_ !== '1') return undefined
  return join(process.env._TAPJS_PROCESSINFO_CWD_ ?? process.cwd(), '.tap/coverage')
}

/**
 * `{ NODE_V8_COVERAGE }` for a node child that runs without tap's hooks (`env -u NODE_OPTIONS`), else `{}`. Node
 * writes the file when the child exits normally or calls process.exit(), not when a signal kills it.
 */
export function coverageEnv (): Record<string, string> {
  const dir = coverageDirectory()
  return dir ? { NODE_V8_COVERAGE: dir } : {}
}

/**
 * Copies the services' coverage files (NODE_V8_COVERAGE, written by Node as nobody) from `from` into
 * coverageDirectory(), without the scripts of node_modules and Node's internals (most of each file, never reported).
 */
function collectCoverage (from: string): void {
  const target = coverageDirectory()
  if (!target || !existsSync(from)) return
  mkdirSync(target, { recursive: true })
  for (const file of readdirSync(from)) {
    try {
      const coverage = JSON.parse(readFileSync(join(from, file), 'utf8')) as { result: Array<{ url: string }> }
      coverage.result = coverage.result.filter(({ url }) => url.startsWith('file:') && !url.includes('/node_modules/'))
      writeFileSync(join(target, `service-${file}`), JSON.stringify(coverage))
    } catch {
      // Cut short (the service was killed while writing it): nothing to count.
    }
  }
}

function quote (arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, '\\$1')}"`
}

/** Kills everything left in the cgroup (all hierarchies) and removes it, deepest first. Never throws. */
export function removeCgroup (name: string): void {
  for (let attempt = 0; attempt < 50; attempt++) {
    let left = false
    for (const h of HIERARCHIES) {
      const top = `/sys/fs/cgroup/${h}/${name}`
      if (!existsSync(top)) continue
      for (const dir of walk(top).reverse()) {
        try {
          for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
            try {
              process.kill(Number(pid), 'SIGKILL')
            } catch {
              /* gone */
            }
          }
          rmdirSync(dir)
        } catch {
          left = true
        }
      }
    }
    if (!left) return
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
  }
}

function walk (dir: string): string[] {
  const out = [dir]
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) out.push(...walk(join(dir, entry.name)))
    }
  } catch {
    /* vanished */
  }
  return out
}

const live = new Set<Manager>()
process.once('exit', () => {
  for (const manager of live) {
    try {
      process.kill(manager.pid, 'SIGKILL')
    } catch {
      /* gone */
    }
    removeCgroup(manager.cgroup)
  }
})

/** Starts a private `systemd --user` (see the module comment). Call `stop()` when done, even on failure. */
export async function startManager (options: ManagerOptions = {}): Promise<Manager> {
  const reason = systemdSkipReason(options)
  if (reason) throw new Error(`cannot start systemd: ${reason}`)
  const root = options.root ?? '/'
  const cgroup = `sdnotify-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const scratch = mkdtempSync(join(tmpdir(), 'sdnotify-'))
  chmodSync(scratch, 0o1777)
  const binds = [...(options.binds ?? []), scratch]
  // The manager gets a clean environment (env -i): only what a user manager needs.
  const systemd = '/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root ' +
    `XDG_RUNTIME_DIR=${RUNTIME_DIR} /lib/systemd/systemd --user`
  const inner =
    root === '/'
      ? ['mount -t tmpfs -o mode=755 tmpfs /run', 'mkdir -p /run/systemd/system /run/user/0', `exec ${systemd}`]
      : [
          `D=${quote(root)}`,
          'mount --bind /proc "$D/proc"',
          'mount --rbind /sys "$D/sys"',
          'mount --rbind /dev "$D/dev"',
          'mount -t tmpfs -o mode=755 tmpfs "$D/run"',
          'mkdir -p "$D/run/systemd/system" "$D/run/user/0"',
          ...binds.map((dir) => `mkdir -p "$D"${quote(dir)} && mount --bind ${quote(dir)} "$D"${quote(dir)}`),
          `exec chroot "$D" ${systemd}`,
        ]
  // Move this shell into the dedicated cgroup first, then become the manager (unshare and the shells exec).
  const outer = [
    'set -eu',
    `for h in ${HIERARCHIES.join(' ')}; do [ -d /sys/fs/cgroup/$h ] || continue; ` +
      `mkdir -p /sys/fs/cgroup/$h/${cgroup}; echo $$ > /sys/fs/cgroup/$h/${cgroup}/cgroup.procs; done`,
    `exec /usr/bin/unshare --mount --propagation private /bin/bash -c ${quote(['set -eu', ...inner].join('\n'))}`,
  ].join('\n')
  const child = spawn('/bin/bash', ['-c', outer], { stdio: ['ignore', 'pipe', 'pipe'] })
  const log: string[] = []
  child.stdout?.on('data', (chunk) => log.push(String(chunk)))
  child.stderr?.on('data', (chunk) => log.push(String(chunk)))
  const node = root === '/' ? SERVICE_RUNTIME : '/usr/bin/node'
  const manager = new Manager({ child, root, cgroup, scratch, log, version: 0, node })
  live.add(manager)
  try {
    const privateSocket = manager.path(`${RUNTIME_DIR}/systemd/private`)
    const deadline = Date.now() + 30_000
    while (!existsSync(privateSocket)) {
      if (child.exitCode !== null) throw new Error(`systemd --user exited with ${child.exitCode}:\n${log.join('')}`)
      if (Date.now() > deadline) throw new Error(`systemd --user did not start in 30 s:\n${log.join('')}`)
      await sleep(50)
    }
    // Services run as nobody: they must be able to reach the notify socket.
    chmodSync(manager.path(RUNTIME_DIR), 0o755)
    chmodSync(manager.path(`${RUNTIME_DIR}/systemd`), 0o755)
    chmodSync(manager.path(`${RUNTIME_DIR}/systemd/notify`), 0o777)
    if (coverageDirectory()) {
      // Every unit's node writes its coverage here on exit (not when killed by a signal); stop() collects it. The
      // scratch folder is visible inside a Debian root too, but not to a unit with PrivateTmp= or ProtectSystem=strict.
      const coverage = join(scratch, 'coverage')
      mkdirSync(coverage)
      chmodSync(coverage, 0o1777)
      const set = await manager.systemctl(['set-environment', `NODE_V8_COVERAGE=${coverage}`])
      if (set.code !== 0) throw new Error(`systemctl set-environment failed: ${set.stderr}`)
    }
    const version = await manager.systemctl(['--version'])
    const match = /systemd (\d+)/.exec(version.stdout)
    if (!match) throw new Error(`systemctl --version said: ${version.stdout}${version.stderr}`)
    Object.assign(manager, { version: Number(match[1]) })
    return manager
  } catch (error) {
    await manager.stop()
    live.delete(manager)
    throw error
  }
}

/** Where the Debian trixie root (systemd 257) is cached, outside the repository. */
export const DEBIAN_ROOT = process.env.SDNOTIFY_DEBIAN_ROOT ?? '/var/cache/sdnotify/trixie'

/** Why the trixie root is not usable, or undefined. */
export function debianRootSkipReason (root = DEBIAN_ROOT): string | undefined {
  const base = systemdSkipReason()
  if (base) return base
  if (!existsSync(join(root, 'lib/systemd/systemd')) || !existsSync(join(root, 'usr/bin/node'))) {
    return `no Debian trixie root at ${root}: run scripts/debian-root.sh (debootstrap, about a minute)`
  }
  return undefined
}

export { tmpdir }
