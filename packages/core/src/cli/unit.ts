// `sdnotify unit`: prints a unit file for a Node.js service that speaks sd_notify, every setting explained.
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, isAbsolute, resolve } from 'node:path'
import { checked, type Options, parse, UsageError } from './args.js'

export const UNIT_HELP = `Usage: sdnotify unit --name NAME [options] -- COMMAND [ARGS…]

Prints a systemd unit file for a Node.js service that uses @sdnotify (Type=notify, a watchdog, a restart
policy, the fd store, sandboxing), each setting with a comment. Save it as /etc/systemd/system/NAME.service.

Options:
  --name NAME               the unit's name (api or api.service)                        required
  --user USER               run as this account (User=); without it, DynamicUser=yes
  --watchdog TIME           WatchdogSec=, e.g. 30s, 1min, 500ms; 0 or off for none      default 30s
  --description TEXT        Description=                                                default "NAME (Node.js)"
  --working-directory DIR   WorkingDirectory=, where relative paths resolve              default: this folder
  --env KEY=VALUE           an Environment= line (repeatable)                           default NODE_ENV=production
  --fd-store N              FileDescriptorStoreMax=: descriptors kept across restarts    default 1
  -h, --help                this help

The command is resolved to an absolute path (node is looked up on PATH), as systemd requires.
Example: sdnotify unit --name api --user api --watchdog 30s -- node server.js`

const OPTIONS: Options = {
  name: { type: 'string' },
  user: { type: 'string' },
  watchdog: { type: 'string' },
  description: { type: 'string' },
  'working-directory': { type: 'string' },
  env: { type: 'string', multiple: true },
  'fd-store': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
}

const CMD = 'sdnotify unit'
// systemd.time(7) time spans: "30s", "1min 30s", "500ms", "2h".
const TIMESPAN = /^(?:\d+(?:\.\d+)?\s*(?:us|usec|ms|msec|s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?)?\s*)+$/
// unit_name_is_valid(): letters, digits and ":-_.\@" (and at most 255 characters with the suffix).
const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]{1,247}$/
// A user name systemd accepts for User= (valid_user_group_name(), relaxed) or a numeric uid.
const USER_NAME = /^(?:[A-Za-z_][A-Za-z0-9_.-]{0,30}\$?|\d+)$/

/** Finds `command` as systemd needs it: an absolute path to an executable file. */
function resolveCommand (command: string, cwd: string, path: string): string {
  const candidates = command.includes('/')
    ? [resolve(cwd, command)]
    : path
      .split(delimiter)
      .filter((dir) => isAbsolute(dir))
      .map((dir) => resolve(dir, command))
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      if (statSync(candidate).isFile()) return candidate
    } catch {
      /* not here */
    }
  }
  const where = command.includes('/') ? `at ${candidates[0]}` : 'on PATH'
  throw new UsageError(
    `${CMD}: the command ${JSON.stringify(command)} was not found ${where} (an executable file is needed)`
  )
}

// Escaping, systemd.unit(5) and systemd.service(5): "%" starts a specifier everywhere; in ExecStart= "$"
// expands variables, "\" starts a C escape, and a word with blanks or quotes must be quoted.
const specifiers = (text: string) => text.replace(/%/g, '%%')

function execWord (word: string): string {
  const escaped = specifiers(word).replace(/\$/g, '$$$$')
  if (/^[A-Za-z0-9_@%$+=:,./-]+$/.test(escaped)) return escaped
  return `"${escaped.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

function quoted (text: string): string {
  const escaped = specifiers(text)
  return /^[^\s"'\\]+$/.test(escaped) ? escaped : `"${escaped.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

/** ProtectHome=yes hides these: an app (or node) living there needs read-only instead. */
const HOME_DIRS = ['/home/', '/root/', '/run/user/']

export interface UnitSettings {
  name: string
  user: string | undefined
  watchdog: string | undefined
  description: string
  workingDirectory: string
  env: string[]
  fdStore: number
  command: string[]
}

export function unitSettings (
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd()
): UnitSettings | 'help' {
  const { values, positionals } = parse(CMD, args, OPTIONS)
  if (values.help) return 'help'
  const rawName = checked(CMD, 'name', values.name, UNIT_NAME, 'letters, digits and ":-_.\\@", at most 247 characters')
  if (rawName === undefined) throw new UsageError(`${CMD}: --name is required (e.g. --name api)`)
  const name = rawName.replace(/\.service$/, '')
  if (name === '' || name.includes('.')) {
    throw new UsageError(
      `${CMD}: --name ${JSON.stringify(rawName)} is not valid: a service name, e.g. api or api.service`
    )
  }
  const user = checked(CMD, 'user', values.user, USER_NAME, 'a user name (letters, digits, "_.-") or a numeric uid')
  const watchdogText = String(values.watchdog ?? '30s')
  let watchdog: string | undefined
  if (watchdogText !== 'off' && watchdogText !== '0') {
    if (!TIMESPAN.test(watchdogText) || !/[1-9]/.test(watchdogText)) {
      throw new UsageError(
        `${CMD}: --watchdog ${JSON.stringify(watchdogText)} is not valid: ` +
          'a time span such as 30s, 1min or 500ms, or off'
      )
    }
    watchdog = watchdogText.trim()
  }
  const description =
    checked(CMD, 'description', values.description, /^[^\n\r]+$/, 'one line of text') ?? `${name} (Node.js)`
  const workingDirectory = resolve(cwd, String(values['working-directory'] ?? cwd))
  const envs = (values.env as string[] | undefined) ?? ['NODE_ENV=production']
  for (const assignment of envs) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=[^\n\r]*$/.test(assignment)) {
      throw new UsageError(
        `${CMD}: --env ${JSON.stringify(assignment)} is not valid: KEY=VALUE, KEY made of letters, digits and _`
      )
    }
  }
  const fdStoreText = checked(
    CMD,
    'fd-store',
    values['fd-store'] ?? '1',
    /^\d{1,5}$/,
    'a number of descriptors from 0 to 65535'
  )
  const fdStore = Number(fdStoreText)
  if (fdStore > 65535) {
    throw new UsageError(`${CMD}: --fd-store ${fdStore} is not valid: a number of descriptors from 0 to 65535`)
  }
  if (positionals.length === 0) {
    throw new UsageError(`${CMD}: no command given: put it after --, e.g. -- node server.js`)
  }
  const [program, ...rest] = positionals as [string, ...string[]]
  const command = [resolveCommand(program, workingDirectory, env.PATH ?? ''), ...rest]
  return { name, user, watchdog, description, workingDirectory, env: envs, fdStore, command }
}

/** The unit file text: every setting preceded by the comment that explains it (systemd has no inline comments). */
export function renderUnit (s: UnitSettings): string {
  const inHome = [s.command[0] as string, s.workingDirectory].some((p) =>
    HOME_DIRS.some((dir) => `${p}/`.startsWith(dir))
  )
  const lines: string[] = []
  const add = (comment: string | string[], setting?: string) => {
    for (const line of Array.isArray(comment) ? comment : [comment]) lines.push(`# ${line}`)
    if (setting !== undefined) lines.push(setting)
  }
  add([
    `${s.name}.service: a Node.js service that tells systemd when it is ready (written by \`sdnotify unit\`).`,
    `Install: save as /etc/systemd/system/${s.name}.service, then:`,
    `  systemctl daemon-reload && systemctl enable --now ${s.name}`,
    `Check:   sdnotify doctor --unit ${s.name}.service; systemd-analyze security ${s.name}.service`,
  ])
  lines.push('', '[Unit]')
  add('The name systemctl status and the journal show.', `Description=${specifiers(s.description)}`)
  add(
    'Start once networking is up (use network-online.target, in Wants= too, to need a configured address).',
    'After=network.target'
  )
  add(
    'Give up after 5 starts within 60 s (a crash loop ends as "failed" instead of spinning).',
    'StartLimitIntervalSec=60s'
  )
  add(
    'Deploys that restart more often than that need a higher burst (a failed unit loses its fd store).',
    'StartLimitBurst=5'
  )

  lines.push('', '[Service]')
  add('The app sends READY=1 once it listens: `systemctl start` returns when it accepts connections.', 'Type=notify')
  add(
    'Only the main process may notify: @sdnotify/core sends from it (koffi, or the OpenFile= socket).',
    'NotifyAccess=main'
  )
  add(
    'The command, with absolute paths (systemd does not search your PATH). Output goes to the journal.',
    `ExecStart=${s.command.map(execWord).join(' ')}`
  )
  add('Where relative paths (./config, the script) resolve.', `WorkingDirectory=${specifiers(s.workingDirectory)}`)
  if (s.user === undefined) {
    add('Runs as a fresh unprivileged user each time (--user NAME for an account of your own).', 'DynamicUser=yes')
  } else {
    add('Runs as this unprivileged account, not root.', `User=${s.user}`)
  }
  for (const assignment of s.env) add("The app's environment.", `Environment=${quoted(assignment)}`)
  add('Restart after a crash, a non-zero exit or a missed watchdog; not after a clean stop.', 'Restart=on-failure')
  add('Pause between a failure and the restart.', 'RestartSec=2s')
  if (s.watchdog === undefined) {
    add('No watchdog (--watchdog off). With WatchdogSec=30s systemd restarts an app that stops answering.')
  } else {
    add(
      'Restart the app when no WATCHDOG=1 came for this long: the adapters ping at half of it, only while healthy.',
      `WatchdogSec=${s.watchdog}`
    )
  }
  add('Time from start to READY=1 (an app can ask for more with EXTEND_TIMEOUT_USEC=).', 'TimeoutStartSec=60s')
  add('After SIGTERM (the app sends STOPPING=1 and drains requests), SIGKILL after this long.', 'TimeoutStopSec=30s')
  if (s.fdStore === 0) add('No fd store (--fd-store 0): restarts close the listening socket.')
  else {
    add(
      'Descriptors systemd keeps for the app across restarts (its listening socket: restarts refuse no connection).',
      `FileDescriptorStoreMax=${s.fdStore}`
    )
  }
  add([
    'systemd ≥ 253: pass the notify socket itself, already connected; @sdnotify/core then writes to it without',
    'loading koffi or any native module. Uncomment on systemd 253 or later (see `systemctl --version`):',
  ])
  lines.push('#OpenFile=/run/systemd/notify:notify')
  lines.push('')
  add('Sandboxing. No privileges gained through setuid binaries or file capabilities.', 'NoNewPrivileges=yes')
  add(
    'No capabilities (a port below 1024 needs AmbientCapabilities=CAP_NET_BIND_SERVICE, and it here).',
    'CapabilityBoundingSet='
  )
  add(
    'The whole file system read-only; the app writes only to StateDirectory= (and ReadWritePaths= you add).',
    'ProtectSystem=strict'
  )
  add(`A folder the app may write: /var/lib/${s.name} ($STATE_DIRECTORY).`, `StateDirectory=${s.name}`)
  if (inHome) {
    add(
      'The app (or node) lives under /home, /root or /run/user: those stay visible, read-only.',
      'ProtectHome=read-only'
    )
  } else {
    add('/home, /root and /run/user are hidden.', 'ProtectHome=yes')
  }
  add('A private /tmp and /var/tmp, emptied when the service stops.', 'PrivateTmp=yes')
  add('No physical devices (/dev/null, /dev/urandom and the like remain).', 'PrivateDevices=yes')
  add('/proc/sys, /sys and the like read-only.', 'ProtectKernelTunables=yes')
  add('No kernel module loading.', 'ProtectKernelModules=yes')
  add('No access to the kernel log.', 'ProtectKernelLogs=yes')
  add('The cgroup tree read-only.', 'ProtectControlGroups=yes')
  add('The system clock cannot be changed.', 'ProtectClock=yes')
  add('The host name cannot be changed.', 'ProtectHostname=yes')
  add('No new namespaces (containers).', 'RestrictNamespaces=yes')
  add('No realtime scheduling.', 'RestrictRealtime=yes')
  add('No setuid/setgid files can be made.', 'RestrictSUIDSGID=yes')
  add('The execution domain cannot be changed.', 'LockPersonality=yes')
  add(
    'Sockets: unix (the notify socket), IP, and netlink (os.networkInterfaces() and DNS look-ups read interfaces).',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK'
  )
  add('Native system calls only (no 32-bit compatibility calls).', 'SystemCallArchitectures=native')
  add('The system calls of an ordinary service…', 'SystemCallFilter=@system-service')
  add('…and the others fail with EPERM instead of killing the process.', 'SystemCallErrorNumber=EPERM')
  add("Not MemoryDenyWriteExecute=yes: V8's JIT compiler needs memory that is writable and executable.")

  lines.push('', '[Install]')
  add('`systemctl enable` starts it at boot.', 'WantedBy=multi-user.target')
  return `${lines.join('\n')}\n`
}
