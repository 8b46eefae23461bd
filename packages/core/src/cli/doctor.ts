// `sdnotify doctor`: which transport a service will use and why, and what its unit file lacks.
// Run inside the unit (e.g. ExecStartPre=sdnotify doctor) or for a named unit (--unit api.service).
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createNotifier, type TransportPlan } from '../index.js'
import { type Options, parse, UsageError } from './args.js'

export const DOCTOR_HELP = `Usage: sdnotify doctor [--unit NAME [--user]] [--json]

Explains which transport @sdnotify/core will use for a service and why, and what its unit file lacks
(Type=notify, NotifyAccess=, WatchdogSec=, OpenFile=, FileDescriptorStoreMax=), with the systemd version.

Inside a unit (ExecStartPre=sdnotify doctor, or the service's own shell): the unit is found from this
process's cgroup and read with systemctl show when permitted (as root, or in a user manager); otherwise
from the environment systemd gave this process. Note: systemd gives NOTIFY_SOCKET to ExecStartPre= only with
NotifyAccess=exec or all, and WATCHDOG_USEC and OpenFile= descriptors only to the main process.

Options:
  --unit NAME   read this unit's settings with systemctl show (from outside the unit)
  --user        the unit is in your user manager (systemctl --user)
  --json        print the report as JSON
  -h, --help    this help`

const OPTIONS: Options = {
  unit: { type: 'string' },
  user: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

const CMD = 'sdnotify doctor'
/** What `systemctl show` is asked for; OpenFile exists from systemd 253 (older ones leave it out). */
const PROPERTIES = [
  'Id',
  'LoadState',
  'FragmentPath',
  'Type',
  'NotifyAccess',
  'WatchdogUSec',
  'FileDescriptorStoreMax',
  'OpenFile',
  'ExecStart',
  'Restart',
  'ActiveState',
]

export type CheckStatus = 'ok' | 'missing' | 'suggested' | 'unknown' | 'n/a'

export interface Check {
  setting: string
  status: CheckStatus
  detail: string
  /** A line to add to [Service], when something is missing or suggested. */
  add?: string
}

export interface DoctorReport {
  core: string
  node: string
  systemd: { version: number | undefined; source: string }
  manager: 'system' | 'user'
  unit: {
    name: string | undefined
    source: string
    properties: Record<string, string> | undefined
    problem: string | undefined
  }
  environment: Record<string, string | undefined>
  /** The transport was worked out for the unit's main process from its settings, not from this process. */
  simulated: boolean
  enabled: boolean
  transport: string | undefined
  transports: TransportPlan[]
  /** What loading the transport did (prepare()): undefined when not tried. */
  loaded: string | undefined
  modules: Record<string, string>
  checks: Check[]
  /** Lines to add to [Service]: for what is missing or suggested. */
  add: string[]
  /** Lines to add unless the unit has them already (what cannot be seen from this process). */
  unlessPresent: string[]
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run (command: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 10_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      let code = 0
      if (error) code = typeof error.code === 'number' ? error.code : 127
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (error && code === 127 ? error.message : '')) })
    })
  })
}

function properties (text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return out
}

/** The unit this process runs in, from its cgroup path (…/app.slice/api.service). */
function ownUnit (): string | undefined {
  let text: string
  try {
    text = readFileSync('/proc/self/cgroup', 'utf8')
  } catch {
    return undefined
  }
  // cgroup v2 ("0::/path") first, else the named systemd hierarchy of v1 ("1:name=systemd:/path").
  const line =
    text.split('\n').find((l) => l.startsWith('0::')) ?? text.split('\n').find((l) => l.includes(':name=systemd:'))
  const path = line?.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) ?? ''
  return path
    .split('/')
    .reverse()
    .find((part) => /\.(service|scope)$/.test(part))
}

async function moduleStatus (name: string): Promise<string> {
  try {
    await import(name)
    return 'loads'
  } catch (error) {
    const message = String((error as Error)?.message ?? error).split('\n')[0] ?? ''
    return /Cannot find (module|package)/.test(message) ? 'not installed' : `fails to load: ${message}`
  }
}

function which (command: string): string | undefined {
  const { accessSync, constants } = process.getBuiltinModule('node:fs')
  for (const dir of (process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/'))) {
    try {
      accessSync(`${dir}/${command}`, constants.X_OK)
      return `${dir}/${command}`
    } catch {
      /* not here */
    }
  }
  return undefined
}

/** The last value of `Key=` in the unit file and its drop-ins (systemctl cat); an empty one resets it. */
async function unitFileSetting (scope: string[], unit: string, key: string): Promise<string | undefined> {
  const cat = await run('systemctl', [...scope, 'cat', unit])
  if (cat.code !== 0) return undefined
  let value: string | undefined
  for (const line of cat.stdout.split('\n')) {
    const match = new RegExp(`^\\s*${key}=(.*)$`).exec(line)
    if (match) value = (match[1] ?? '').trim() || undefined
  }
  return value
}

const noWatchdog = (value: string | undefined) =>
  value === undefined || value === '' || value === '0' || value === 'infinity'

export async function doctor (args: string[]): Promise<{ report: DoctorReport; json: boolean } | 'help'> {
  const { values, positionals } = parse(CMD, args, OPTIONS)
  if (values.help) return 'help'
  if (positionals.length > 0) {
    throw new UsageError(
      `${CMD}: unexpected argument ${JSON.stringify(positionals[0])} (did you mean --unit ${positionals[0]}?)`
    )
  }
  const named = values.unit === undefined ? undefined : String(values.unit)
  if (named !== undefined && !/^[A-Za-z0-9:_.\\@-]+$/.test(named)) {
    throw new UsageError(`${CMD}: --unit ${JSON.stringify(named)} is not valid: a unit name such as api.service`)
  }
  if (values.user && named === undefined) throw new UsageError(`${CMD}: --user goes with --unit NAME`)
  const env = process.env
  // systemd sets MANAGERPID only for the services of a user manager (systemd.exec(5)).
  const manager: 'system' | 'user' =
    values.user || (named === undefined && env.MANAGERPID !== undefined) ? 'user' : 'system'
  const scope = manager === 'user' ? ['--user'] : []
  const inUnit = env.INVOCATION_ID !== undefined
  // A bare name is a service, as systemctl reads it.
  let unitName = named
  if (named !== undefined && !/\.[a-z]+$/.test(named)) unitName = `${named}.service`
  let unitSource = named === undefined ? 'this process is not in a unit: no INVOCATION_ID' : '--unit'
  if (named === undefined && inUnit) {
    unitName = ownUnit()
    unitSource =
      unitName === undefined ? 'in a unit, but its name is not in /proc/self/cgroup' : "this process's cgroup"
  }

  let props: Record<string, string> | undefined
  let problem: string | undefined
  if (unitName !== undefined) {
    const shown = await run('systemctl', [...scope, 'show', unitName, '-p', PROPERTIES.join(',')])
    if (shown.code !== 0) {
      problem = `systemctl ${[...scope, 'show'].join(' ')} failed: ${shown.stderr.trim() || `exit ${shown.code}`}`
    } else {
      props = properties(shown.stdout)
      if (props.LoadState === 'not-found') {
        problem = `${unitName} was not found by the ${manager} manager`
        props = undefined
      }
    }
  }
  if (named !== undefined && props === undefined) throw new Error(`${CMD}: ${problem}`)

  // The version of the manager itself when it answers, else of the installed systemctl.
  let version: number | undefined
  let versionSource = 'systemctl is not available'
  const managerVersion = props === undefined ? undefined : await run('systemctl', [...scope, 'show', '-p', 'Version'])
  const fromManager = /^Version=(\d+)/m.exec(managerVersion?.stdout ?? '')
  if (fromManager) {
    version = Number(fromManager[1])
    versionSource = `the ${manager} manager`
  } else {
    const installed = /^systemd (\d+)/m.exec((await run('systemctl', ['--version'])).stdout)
    if (installed) {
      version = Number(installed[1])
      versionSource = 'systemctl --version'
    }
  }

  // The transport: for the unit's main process, from the unit's settings when they are known (a control
  // process such as ExecStartPre= gets neither OpenFile= descriptors nor, by default, NOTIFY_SOCKET).
  const notifyType = props === undefined ? undefined : /^notify/.test(props.Type ?? '')
  const notifyAccess = props?.NotifyAccess
  const openFile = props === undefined ? undefined : /:notify(?::|$|\s)/.test(props.OpenFile ?? '')
  let simulated = false
  const planEnv: Record<string, string | undefined> = { ...env }
  if (props !== undefined) {
    simulated = true
    const socket =
      manager === 'user'
        ? `${env.XDG_RUNTIME_DIR ?? `/run/user/${process.getuid?.()}`}/systemd/notify`
        : '/run/systemd/notify'
    planEnv.NOTIFY_SOCKET = notifyAccess === 'none' ? undefined : (env.NOTIFY_SOCKET ?? socket)
    for (const name of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) planEnv[name] = undefined
    if (openFile) Object.assign(planEnv, { LISTEN_FDS: '1', LISTEN_FDNAMES: 'notify', LISTEN_PID: String(process.pid) })
  }
  const warnings: string[] = []
  const notifier = createNotifier({ env: planEnv, onWarning: (message) => warnings.push(message) })
  const description = notifier.describe()
  let loaded: string | undefined
  // Load the chosen transport for real (koffi, unix-dgram), except a simulated descriptor that is not ours.
  if (notifier.enabled && !(simulated && description.transport === 'fd')) {
    try {
      await notifier.prepare()
      loaded = `${notifier.transport} loaded`
    } catch (error) {
      loaded = `failed: ${(error as Error).message}`
    }
  }
  const transport = notifier.transport
  await notifier.close()

  const checks: Check[] = []
  const viaExec = transport === 'exec'
  // Type=
  if (notifyType === true) {
    checks.push({ setting: 'Type=', status: 'ok', detail: `Type=${props?.Type}: systemd waits for READY=1` })
  } else if (notifyType === false) {
    checks.push({
      setting: 'Type=',
      status: 'missing',
      detail: `Type=${props?.Type}: systemd does not wait for READY=1 and ignores STOPPING=1 and the watchdog's pings`,
      add: 'Type=notify',
    })
  } else if (env.NOTIFY_SOCKET !== undefined) {
    checks.push({
      setting: 'Type=',
      status: 'ok',
      detail: 'NOTIFY_SOCKET is set: a Type=notify unit (or one with NotifyAccess= set)',
    })
  } else if (inUnit) {
    checks.push({
      setting: 'Type=',
      status: 'unknown',
      detail:
        'NOTIFY_SOCKET is not set: the unit is not Type=notify, or this is a control process (ExecStartPre=…), ' +
        'which gets NOTIFY_SOCKET only with NotifyAccess=exec or all',
      add: 'Type=notify',
    })
  } else {
    checks.push({
      setting: 'Type=',
      status: 'missing',
      detail: 'not running under systemd (no NOTIFY_SOCKET, no INVOCATION_ID)',
      add: 'Type=notify',
    })
  }
  // NotifyAccess=
  if (notifyAccess === 'none') {
    checks.push({
      setting: 'NotifyAccess=',
      status: 'missing',
      detail: 'NotifyAccess=none: every notification is ignored',
      add: 'NotifyAccess=main',
    })
  } else if (viaExec && notifyAccess !== 'all') {
    checks.push({
      setting: 'NotifyAccess=',
      status: 'missing',
      detail:
        'the exec transport (systemd-notify, a child process) needs NotifyAccess=all' +
        `${notifyAccess ? ` (it is ${notifyAccess})` : ''}; or install koffi`,
      add: 'NotifyAccess=all',
    })
  } else if (notifyAccess !== undefined) {
    const why =
      notifyAccess === 'all'
        ? 'any process of the unit may notify (main is enough for in-process sending)'
        : 'the main process notifies, in-process'
    checks.push({ setting: 'NotifyAccess=', status: 'ok', detail: `NotifyAccess=${notifyAccess}: ${why}` })
  } else {
    checks.push({
      setting: 'NotifyAccess=',
      status: 'unknown',
      detail: 'not visible from inside; the default, main, is right unless the transport is exec',
    })
  }
  // WatchdogSec=
  if (props !== undefined) {
    // systemd (252) reports WatchdogUSec=infinity until the service has started once: ask the unit file too.
    const configured = noWatchdog(props.WatchdogUSec)
      ? await unitFileSetting(scope, unitName as string, 'WatchdogSec')
      : undefined
    if (!noWatchdog(props.WatchdogUSec)) {
      checks.push({ setting: 'WatchdogSec=', status: 'ok', detail: `WatchdogSec=${props.WatchdogUSec}` })
    } else if (!noWatchdog(configured)) {
      const detail = `WatchdogSec=${configured} (from the unit file: systemctl show has it once the service started)`
      checks.push({ setting: 'WatchdogSec=', status: 'ok', detail })
    } else {
      checks.push({
        setting: 'WatchdogSec=',
        status: 'missing',
        detail: 'no watchdog: a hung app is never restarted',
        add: 'WatchdogSec=30s',
      })
    }
  } else if (env.WATCHDOG_USEC !== undefined) {
    checks.push({ setting: 'WatchdogSec=', status: 'ok', detail: `WATCHDOG_USEC=${env.WATCHDOG_USEC}` })
  } else if (inUnit) {
    checks.push({
      setting: 'WatchdogSec=',
      status: 'unknown',
      detail:
        'WATCHDOG_USEC is not set: no WatchdogSec=, or this is a control process ' +
        '(systemd gives it to the main process only)',
      add: 'WatchdogSec=30s',
    })
  } else {
    checks.push({ setting: 'WatchdogSec=', status: 'missing', detail: 'no WATCHDOG_USEC', add: 'WatchdogSec=30s' })
  }
  // OpenFile= (systemd ≥ 253)
  const notifySocket =
    planEnv.NOTIFY_SOCKET ?? (manager === 'user' ? '$XDG_RUNTIME_DIR/systemd/notify' : '/run/systemd/notify')
  const openFileLine = `OpenFile=${notifySocket}:notify`
  if (version !== undefined && version < 253) {
    checks.push({
      setting: 'OpenFile=',
      status: 'n/a',
      detail: `needs systemd 253 (this is ${version}): koffi sends instead`,
    })
  } else if (openFile === true || (props === undefined && description.transport === 'fd')) {
    checks.push({
      setting: 'OpenFile=',
      status: 'ok',
      detail: 'the notify socket is passed as descriptor "notify": no native module is loaded',
    })
  } else {
    checks.push({
      setting: 'OpenFile=',
      status: props === undefined && inUnit ? 'unknown' : 'suggested',
      detail:
        'the notify socket is not passed' +
        (props === undefined && inUnit ? ' to this process (a control process never gets OpenFile= descriptors)' : '') +
        ': with it, core writes to it in pure JS, without koffi',
      add: openFileLine,
    })
  }
  // FileDescriptorStoreMax=
  if (props !== undefined) {
    checks.push(
      (props.FileDescriptorStoreMax ?? '0') === '0'
        ? {
            setting: 'FileDescriptorStoreMax=',
            status: 'suggested',
            detail: 'no fd store: storeFds() is refused, so a restart closes the listening socket',
            add: 'FileDescriptorStoreMax=1',
          }
        : {
            setting: 'FileDescriptorStoreMax=',
            status: 'ok',
            detail: `FileDescriptorStoreMax=${props.FileDescriptorStoreMax}`,
          }
    )
  } else if (env.FDSTORE !== undefined) {
    checks.push({ setting: 'FileDescriptorStoreMax=', status: 'ok', detail: `FDSTORE=${env.FDSTORE}` })
  } else if (version !== undefined && version < 254) {
    // $FDSTORE: systemd.exec(5), "Added in version 254"; set together with NOTIFY_SOCKET.
    checks.push({
      setting: 'FileDescriptorStoreMax=',
      status: 'unknown',
      detail: `systemd ${version} does not tell ($FDSTORE is set from 254 on)`,
    })
  } else if (env.NOTIFY_SOCKET !== undefined) {
    checks.push({
      setting: 'FileDescriptorStoreMax=',
      status: 'suggested',
      detail: 'FDSTORE is not set: no fd store, so a restart closes the listening socket',
      add: 'FileDescriptorStoreMax=1',
    })
  } else {
    checks.push({
      setting: 'FileDescriptorStoreMax=',
      status: 'unknown',
      detail: 'FDSTORE comes with NOTIFY_SOCKET, which is not set here',
    })
  }

  const modules: Record<string, string> = {
    koffi: await moduleStatus('koffi'),
    'unix-dgram': await moduleStatus('unix-dgram'),
    'systemd-notify': which('systemd-notify') ?? 'not on PATH',
  }
  const core = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  const shownEnv = Object.fromEntries(
    [
      'INVOCATION_ID',
      'MANAGERPID',
      'NOTIFY_SOCKET',
      'WATCHDOG_USEC',
      'WATCHDOG_PID',
      'LISTEN_FDS',
      'LISTEN_FDNAMES',
      'FDSTORE',
    ].map((n) => [n, env[n]])
  )
  const report: DoctorReport = {
    core: core.version,
    node: process.version,
    systemd: { version, source: versionSource },
    manager,
    unit: { name: unitName, source: unitSource, properties: props, problem },
    environment: shownEnv,
    simulated,
    enabled: description.enabled,
    transport,
    transports: description.transports,
    loaded: [loaded, ...warnings].filter(Boolean).join('; ') || undefined,
    modules,
    checks,
    add: checks.flatMap((check) =>
      check.add !== undefined && (check.status === 'missing' || check.status === 'suggested') ? [check.add] : []
    ),
    unlessPresent: checks.flatMap((check) =>
      check.add !== undefined && check.status === 'unknown' ? [check.add] : []
    ),
  }
  return { report, json: values.json === true }
}

export function renderDoctor (r: DoctorReport): string {
  const out: string[] = []
  out.push(`sdnotify doctor: @sdnotify/core ${r.core}, Node.js ${r.node}`)
  out.push(`systemd: ${r.systemd.version ?? 'unknown'} (${r.systemd.source}), ${r.manager} manager`)
  const settings = r.unit.properties
    ? `settings from systemctl${r.manager === 'user' ? ' --user' : ''} show`
    : 'settings from the environment'
  out.push(
    `unit: ${r.unit.name ?? 'none'} (${r.unit.source}); ${settings}${r.unit.problem ? ` (${r.unit.problem})` : ''}`
  )
  const env = Object.entries(r.environment).filter(([, v]) => v !== undefined)
  out.push(`environment: ${env.length ? env.map(([k, v]) => `${k}=${v}`).join(' ') : 'no systemd variables'}`)
  out.push('')
  const whose = r.simulated ? " (for the unit's main process, from its settings)" : ''
  out.push(
    r.transport === undefined
      ? `transport: none${whose}: notifications are not sent`
      : `transport: ${r.transport}${whose}`
  )
  for (const plan of r.transports) out.push(`  ${plan.name.padEnd(11)} ${plan.usable ? 'yes' : 'no '}  ${plan.reason}`)
  if (r.loaded) out.push(`  loading: ${r.loaded}`)
  out.push(
    `  modules: ${Object.entries(r.modules)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`
  )
  out.push('')
  out.push('unit file:')
  for (const check of r.checks) out.push(`  ${check.status.padEnd(9)} ${check.setting.padEnd(24)} ${check.detail}`)
  if (r.add.length > 0) {
    out.push('', 'add to [Service]:')
    for (const line of r.add) out.push(`  ${line}`)
  }
  if (r.unlessPresent.length > 0) {
    out.push('', 'add to [Service] unless the unit has it (not visible from this process):')
    for (const line of r.unlessPresent) out.push(`  ${line}`)
  }
  if (r.add.length === 0 && r.unlessPresent.length === 0) out.push('', 'nothing to add.')
  return `${out.join('\n')}\n`
}
