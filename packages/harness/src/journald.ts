// A real systemd-journald for tests, in a private mount namespace (see DEVELOPERS.md, "Testing against real
// systemd"): a tmpfs on /run (its sockets and its volatile journal, /run/log/journal) and one on /var/log/journal,
// so that nothing a test logs can reach the host's persistent journal. Like startManager(), it runs in a
// dedicated cgroup (never the root cgroup, never a cgroup namespace), and the test process never enters the
// namespace: it sends through /proc/<pid>/root/run/systemd/journal/socket and reads with journalctl via nsenter.
// journald needs no PID 1: started directly, it creates /run/systemd/journal/{socket,stdout,dev-log} itself.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { type Manager, removeCgroup } from './manager.js'

const HIERARCHIES = ['systemd', 'unified', 'memory', 'pids', 'cpu']
export const JOURNALD = '/lib/systemd/systemd-journald'

/**
 * journald.conf(5) for tests, in /run/systemd/journald.conf.d/ (our tmpfs): the volatile journal only; no rate
 * limit (by default a unit may log 10,000 messages per 30 s, and the test process may sit in a host unit, e.g. a
 * session scope): a test counting lost lines must count ours, not journald's policy; no wall messages for
 * emergencies (they would reach the host's terminals); no kernel log.
 */
const CONFIG = ['[Journal]', 'Storage=volatile', 'RateLimitIntervalSec=0', 'ForwardToWall=no', 'ReadKMsg=no', '']
  .join('\n')

/** Why a real journald cannot run here, or undefined. */
export function journaldSkipReason (): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux'
  if (process.getuid?.() !== 0) return 'needs root (it creates a cgroup and a mount namespace for a private journald)'
  if (!existsSync(JOURNALD)) return `no ${JOURNALD}`
  for (const tool of ['/usr/bin/unshare', '/usr/bin/nsenter', '/usr/bin/journalctl']) {
    if (!existsSync(tool)) return `${tool} is missing`
  }
  return undefined
}

export interface JournaldOptions {
  /**
   * Run in this private systemd manager's mount namespace (its /run), so that its services with
   * `StandardOutput=journal` log to this journald and get $JOURNAL_STREAM. Stop the journald before the manager.
   */
  manager?: Manager
}

export type JournalEntry = Record<string, string | number[] | (string | number[])[]>

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export class Journald {
  readonly pid: number
  readonly cgroup: string
  private readonly child: ChildProcess
  private readonly log: string[]
  private stopped = false

  constructor (child: ChildProcess, cgroup: string, log: string[]) {
    this.child = child
    this.pid = child.pid as number
    this.cgroup = cgroup
    this.log = log
  }

  /** A path inside journald's namespace, reachable from the test process. */
  path (inside: string): string {
    return `/proc/${this.pid}/root${inside}`
  }

  /** The native socket, as the test process reaches it (pass it as the `socket` option). */
  get socket (): string {
    return this.path('/run/systemd/journal/socket')
  }

  /** What journald printed. */
  output (): string {
    return this.log.join('')
  }

  /**
   * Entries from `journalctl -D /run/log/journal -o json` (`matches` such as `SYSLOG_IDENTIFIER=x`), run inside
   * the namespace, with `--all` (otherwise a value over 4096 bytes prints as null). `fields` limits the output
   * (`--output-fields`), which keeps large reads fast.
   */
  async entries (matches: string[] = [], fields?: string[]): Promise<JournalEntry[]> {
    const args = ['-t', String(this.pid), '-m', '-r', '--']
    args.push('journalctl', '-D', '/run/log/journal', '-o', 'json', '--all', '--no-pager')
    if (fields) args.push(`--output-fields=${fields.join(',')}`)
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile('/usr/bin/nsenter', [...args, ...matches], { maxBuffer: 512 << 20 }, (error, out, err) => {
        // journalctl exits 1 with "-- No entries --" on some versions: that is an empty answer.
        const empty = /No entries/.test(String(err) + String(out))
        if (error && !empty) reject(new Error(`journalctl: ${error.message}\n${err}`))
        else resolve(String(out))
      })
    })
    return stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as JournalEntry)
  }

  /** Polls entries() until `count` match (journald stores an entry microseconds after reading it). */
  async waitForEntries (
    matches: string[],
    count: number,
    timeoutMs = 20_000,
    fields?: string[]
  ): Promise<JournalEntry[]> {
    const deadline = Date.now() + timeoutMs
    let found = await this.entries(matches, fields)
    while (found.length < count && Date.now() < deadline) {
      await sleep(100)
      found = await this.entries(matches, fields)
    }
    return found
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    live.delete(this)
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      this.child.kill('SIGTERM')
      await Promise.race([exited, sleep(5000)])
    }
    removeCgroup(this.cgroup)
  }
}

const live = new Set<Journald>()
process.once('exit', () => {
  for (const journald of live) {
    try {
      process.kill(journald.pid, 'SIGKILL')
    } catch {
      /* gone */
    }
    removeCgroup(journald.cgroup)
  }
})

function quote (arg: string): string {
  return `'${arg.replace(/'/g, '\'\\\'\'')}'`
}

/** Starts a private systemd-journald (see the module comment). Call `stop()` when done, even on failure. */
export async function startJournald (options: JournaldOptions = {}): Promise<Journald> {
  const reason = journaldSkipReason()
  if (reason) throw new Error(`cannot start journald: ${reason}`)
  const cgroup = `sdnotify-journald-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const inner = [
    'set -eu',
    // A manager's namespace has its tmpfs on /run already; a new namespace gets one here.
    ...(options.manager ? [] : ['mount -t tmpfs -o mode=755 tmpfs /run']),
    // Never the host's persistent journal, whatever the configuration says.
    'if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=755 tmpfs /var/log/journal; fi',
    'mkdir -p /run/systemd/journald.conf.d /run/log/journal',
    `printf '%s' ${quote(CONFIG)} > /run/systemd/journald.conf.d/sdnotify-test.conf`,
    `exec ${JOURNALD}`,
  ].join('\n')
  const enter = options.manager
    ? `exec /usr/bin/nsenter -t ${options.manager.pid} -m -r -- /bin/bash -c ${quote(inner)}`
    : `exec /usr/bin/unshare --mount --propagation private /bin/bash -c ${quote(inner)}`
  // Move this shell into the dedicated cgroup first, then become journald (unshare/nsenter and the shells exec).
  const outer = [
    'set -eu',
    `for h in ${HIERARCHIES.join(' ')}; do [ -d /sys/fs/cgroup/$h ] || continue; ` +
      `mkdir -p /sys/fs/cgroup/$h/${cgroup}; echo $$ > /sys/fs/cgroup/$h/${cgroup}/cgroup.procs; done`,
    enter,
  ].join('\n')
  const child = spawn('/bin/bash', ['-c', outer], { stdio: ['ignore', 'pipe', 'pipe'] })
  const log: string[] = []
  child.stdout?.on('data', (chunk) => log.push(String(chunk)))
  child.stderr?.on('data', (chunk) => log.push(String(chunk)))
  const journald = new Journald(child, cgroup, log)
  live.add(journald)
  try {
    const deadline = Date.now() + 20_000
    for (;;) {
      if (existsSync(journald.socket) && existsSync(journald.path('/run/systemd/journal/stdout'))) break
      if (child.exitCode !== null) throw new Error(`systemd-journald exited with ${child.exitCode}:\n${log.join('')}`)
      if (Date.now() > deadline) throw new Error(`systemd-journald did not start in 20 s:\n${log.join('')}`)
      await sleep(50)
    }
    return journald
  } catch (error) {
    await journald.stop()
    throw error
  }
}
