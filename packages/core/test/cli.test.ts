// The `sdnotify` command as shipped (dist/esm/cli.js, the package's bin), without systemd running:
// `unit` output and its validation by systemd-analyze, bad arguments, and `doctor` from a given environment.
// The real-systemd side (doctor in ExecStartPre=, a generated unit started) is systemd-cli.test.ts.
import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { fakeManager } from '../src/testing.js'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const cli = join(pkg, 'dist/esm/cli.js')
const node = process.execPath

interface Result {
  code: number
  stdout: string
  stderr: string
}

/** Runs the bin as a user would (its shebang), with exactly `env` (plus PATH unless given). */
function sdnotify (args: string[], env: Record<string, string | undefined> = {}, cwd = pkg): Promise<Result> {
  return new Promise((resolve) => {
    const childEnv = { PATH: process.env.PATH, ...env }
    execFile(
      cli,
      args,
      { env: childEnv, cwd, encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number((error as { code?: unknown }).code) : 0, stdout, stderr })
      }
    )
  })
}

const scratch = mkdtempSync(join(tmpdir(), 'sdnotify-cli-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('the bin is an executable ES module with a shebang', async (t) => {
  const help = await sdnotify(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: sdnotify <command>[\s\S]*doctor[\s\S]*unit/)
  t.match((await sdnotify(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/)
  t.match((await sdnotify(['unit', '--help'])).stdout, /Usage: sdnotify unit --name NAME/)
  t.match((await sdnotify(['doctor', '-h'])).stdout, /Usage: sdnotify doctor/)
})

t.test('bad arguments: a message naming the argument, exit status 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /^sdnotify: no command given/],
    [['docter'], /^sdnotify: unknown command "docter" \(commands: doctor, unit/],
    [['unit', '--', 'node', 'x.js'], /^sdnotify unit: --name is required/],
    [['unit', '--name'], /^sdnotify unit: Option '--name <value>' argument missing/],
    [['unit', '--nmae', 'api', '--', 'node'], /^sdnotify unit: Unknown option '--nmae'/],
    [['unit', '--name', 'a/b', '--', 'node'], /^sdnotify unit: --name "a\/b" is not valid/],
    [['unit', '--name', 'api'], /^sdnotify unit: no command given: put it after --/],
    [
      ['unit', '--name', 'api', '--', 'no-such-command-here'],
      /the command "no-such-command-here" was not found on PATH/,
    ],
    [['unit', '--name', 'api', '--watchdog', '3x', '--', 'node'], /--watchdog "3x" is not valid: a time span/],
    [['unit', '--name', 'api', '--fd-store', 'many', '--', 'node'], /--fd-store "many" is not valid/],
    [['unit', '--name', 'api', '--env', 'A B=1', '--', 'node'], /--env "A B=1" is not valid: KEY=VALUE/],
    [['unit', '--name', 'api', '--user', 'bad user', '--', 'node'], /--user "bad user" is not valid/],
    [['doctor', '--user'], /^sdnotify doctor: --user goes with --unit NAME/],
    [['doctor', 'api.service'], /unexpected argument "api.service" \(did you mean --unit api.service\?\)/],
    [['doctor', '--unit', 'a b'], /--unit "a b" is not valid/],
  ]
  for (const [args, message] of cases) {
    const out = await sdnotify(args)
    t.equal(out.code, 2, `${args.join(' ')}: exit 2`)
    t.match(out.stderr, message, args.join(' '))
    t.equal(out.stdout, '', 'nothing on stdout')
  }
})

t.test('unit: Type=notify, watchdog, restart policy, fd store, sandboxing; every setting commented', async (t) => {
  const app = join(scratch, 'srv')
  mkdirSync(app, { recursive: true })
  const out = await sdnotify(
    ['unit', '--name', 'api.service', '--user', 'api', '--watchdog', '20s', '--', 'node', 'server.js', '--port', '80'],
    {},
    app
  )
  t.equal(out.code, 0, out.stderr)
  const lines = out.stdout.split('\n')
  const settings = lines.filter((line) => /^[A-Z]\w+=/.test(line))
  for (const setting of settings) {
    const before = lines[lines.indexOf(setting) - 1] ?? ''
    t.match(before, /^# \S/, `${setting} has a comment above it`)
  }
  const expected = [
    'Type=notify',
    'NotifyAccess=main',
    `ExecStart=${node} server.js --port 80`,
    `WorkingDirectory=${app}`,
    'User=api',
    'Restart=on-failure',
    'RestartSec=2s',
    'WatchdogSec=20s',
    'StartLimitIntervalSec=60s',
    'StartLimitBurst=5',
    'FileDescriptorStoreMax=1',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'WantedBy=multi-user.target',
  ]
  for (const setting of expected) t.ok(settings.includes(setting), setting)
  t.ok(lines.includes('#OpenFile=/run/systemd/notify:notify'), 'OpenFile= as a comment, for systemd ≥ 253')
  t.notOk(
    settings.some((s) => s.startsWith('MemoryDenyWriteExecute=')),
    "not MemoryDenyWriteExecute (V8's JIT)"
  )
  t.match(out.stdout, /^\[Unit\][\s\S]*^\[Service\][\s\S]*^\[Install\]/m)

  const escaped = await sdnotify(
    [
      'unit',
      '--name',
      'odd',
      '--watchdog',
      'off',
      '--fd-store',
      '0',
      '--env',
      'GREETING=50% off',
      '--',
      'node',
      'a b.js',
      '$HOME',
      '100%',
    ],
    {},
    app
  )
  t.equal(escaped.code, 0, escaped.stderr)
  t.match(
    escaped.stdout,
    new RegExp(`^ExecStart=${node} "a b\\.js" \\$\\$HOME 100%%$`, 'm'),
    'systemd quoting: spaces, $ and % escaped'
  )
  t.match(escaped.stdout, /^Environment="GREETING=50%% off"$/m)
  t.match(escaped.stdout, /^DynamicUser=yes$/m, 'no --user: a dynamic user')
  t.notMatch(escaped.stdout, /^WatchdogSec=/m, '--watchdog off')
  t.notMatch(escaped.stdout, /^FileDescriptorStoreMax=/m, '--fd-store 0')

  const home = await sdnotify([
    'unit',
    '--name',
    'api',
    '--working-directory',
    '/home/someone/api',
    '--',
    node,
    'server.js',
  ])
  t.match(home.stdout, /^ProtectHome=read-only$/m, 'an app under /home keeps it visible, read-only')
})

const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((path) => existsSync(path))
if (!analyze) t.comment('skipping systemd-analyze verify: systemd-analyze is not installed')

t.test(
  'unit: systemd-analyze verify finds nothing to say about the generated file',
  { skip: analyze ? false : 'no systemd-analyze' },
  async (t) => {
    const dir = join(scratch, 'verify')
    mkdirSync(dir, { recursive: true })
    const script = join(dir, 'server.js')
    writeFileSync(script, '')
    const out = await sdnotify(
      ['unit', '--name', 'sdnotify-verify', '--user', 'sdnotify-app', '--', 'node', script],
      {},
      dir
    )
    t.equal(out.code, 0, out.stderr)
    const verify = (text: string, name: string) =>
      new Promise<Result>((resolve) => {
        const file = join(dir, name)
        writeFileSync(file, text)
        execFile(
          analyze as string,
          ['verify', file],
          { encoding: 'utf8', timeout: 60_000 },
          (error, stdout, stderr) => {
            resolve({ code: error ? Number((error as { code?: unknown }).code) || 1 : 0, stdout, stderr })
          }
        )
      })
    // systemd-analyze verify exits 0 even for unknown keys or unparsable values (252): its messages are the verdict.
    const good = await verify(out.stdout, 'sdnotify-verify.service')
    t.equal(good.code, 0)
    t.equal(good.stderr.trim(), '', 'no warnings about the generated file')
    const broken = out.stdout
      .replace('NotifyAccess=main', 'NotifyAcess=main')
      .replace('WatchdogSec=30s', 'WatchdogSec=30x')
    const bad = await verify(broken, 'sdnotify-broken.service')
    t.match(bad.stderr, /Unknown key '?NotifyAcess'?/, 'the control: a misspelt key is reported')
    t.match(bad.stderr, /30x/, 'and an unparsable time span')
  }
)

t.test('doctor outside systemd: no socket, and what a unit needs', async (t) => {
  const out = await sdnotify(['doctor'])
  t.equal(out.code, 0, out.stderr)
  t.match(out.stdout, /^transport: none: notifications are not sent$/m)
  t.match(out.stdout, /^ {2}missing {3}Type= +not running under systemd/m)
  t.match(out.stdout, /^add to \[Service\]:\n {2}Type=notify\n {2}WatchdogSec=30s$/m)
  const json = JSON.parse((await sdnotify(['doctor', '--json'])).stdout) as unknown
  t.match(json, {
    enabled: false,
    transport: undefined,
    unit: { name: undefined },
    add: ['Type=notify', 'WatchdogSec=30s'],
  })
})

t.test(
  'doctor with NOTIFY_SOCKET and WATCHDOG_USEC (as the main process sees them): koffi, loaded; watchdog ok',
  async (t) => {
    const manager = await fakeManager({ watchdogMs: 30_000 })
    t.teardown(() => manager.close())
    const out = await sdnotify(['doctor', '--json'], {
      NOTIFY_SOCKET: manager.address,
      WATCHDOG_USEC: manager.env.WATCHDOG_USEC,
    })
    t.equal(out.code, 0, out.stderr)
    const report = JSON.parse(out.stdout) as { checks: unknown }
    t.match(report, { enabled: true, transport: 'koffi', loaded: 'koffi loaded', simulated: false })
    t.match(report.checks, [
      { setting: 'Type=', status: 'ok' },
      { setting: 'NotifyAccess=', status: 'unknown' },
      { setting: 'WatchdogSec=', status: 'ok', detail: 'WATCHDOG_USEC=30000000' },
      { setting: 'OpenFile=' },
      { setting: 'FileDescriptorStoreMax=' },
    ])
    t.same(manager.notifications, [], 'doctor sends nothing')
  }
)

t.test('doctor in a control process (ExecStartPre=) without NOTIFY_SOCKET says why it may be missing', async (t) => {
  // A PATH with node only: no systemctl, no systemd-notify.
  const bin = join(scratch, 'node-only')
  mkdirSync(bin, { recursive: true })
  if (!existsSync(join(bin, 'node'))) symlinkSync(node, join(bin, 'node'))
  const out = await sdnotify(['doctor'], { INVOCATION_ID: '0123456789abcdef0123456789abcdef', PATH: bin })
  t.equal(out.code, 0, out.stderr)
  t.match(
    out.stdout,
    /unknown +Type= +NOTIFY_SOCKET is not set: the unit is not Type=notify, or this is a control process/
  )
  t.match(out.stdout, /unknown +WatchdogSec= +WATCHDOG_USEC is not set: no WatchdogSec=, or this is a control process/)
  t.match(out.stdout, /^systemd: unknown \(systemctl is not available\)/m, 'no systemctl on PATH: said so')
  t.match(
    out.stdout,
    /^add to \[Service\] unless the unit has it \(not visible from this process\):\n {2}Type=notify\n {2}WatchdogSec=/m
  )
})

t.test('doctor --unit reads systemctl show (a stand-in systemctl on PATH)', async (t) => {
  const bin = join(scratch, 'bin')
  mkdirSync(bin, { recursive: true })
  const props = join(scratch, 'props')
  // Prints the properties it is given, like systemctl show; the manager's Version; and records its arguments.
  writeFileSync(
    join(bin, 'systemctl'),
    `#!/bin/sh
echo "$@" >> ${JSON.stringify(join(scratch, 'calls'))}
case "$*" in
  *"show -p Version"*) echo "Version=255.4-1" ;;
  *--version*) echo "systemd 255 (255.4-1)" ;;
  *show*) cat ${JSON.stringify(props)} ;;
esac
`
  )
  chmodSync(join(bin, 'systemctl'), 0o755)
  writeFileSync(
    props,
    'Id=api.service\nLoadState=loaded\nType=simple\nNotifyAccess=none\n' +
      'WatchdogUSec=0\nFileDescriptorStoreMax=0\nOpenFile=\n'
  )
  const env = { PATH: `${bin}:${process.env.PATH}` }
  const simple = await sdnotify(['doctor', '--unit', 'api', '--user'], env)
  t.equal(simple.code, 0, simple.stderr)
  t.match(simple.stdout, /^systemd: 255 \(the user manager\), user manager$/m)
  t.match(simple.stdout, /^unit: api\.service \(--unit\); settings from systemctl --user show$/m)
  t.match(simple.stdout, /missing +Type= +Type=simple: systemd does not wait for READY=1/)
  t.match(simple.stdout, /missing +NotifyAccess= +NotifyAccess=none: every notification is ignored/)
  t.match(simple.stdout, /missing +WatchdogSec=/)
  t.match(simple.stdout, /suggested OpenFile= /)
  t.match(simple.stdout, /suggested FileDescriptorStoreMax=/)
  t.match(
    simple.stdout,
    /add to \[Service\]:\n {2}Type=notify\n {2}NotifyAccess=main\n {2}WatchdogSec=30s\n {2}OpenFile=.*:notify\n {2}F/
  )

  writeFileSync(
    props,
    'Id=api.service\nLoadState=loaded\nType=notify-reload\nNotifyAccess=main\nWatchdogUSec=30s\n' +
      'FileDescriptorStoreMax=4\n' +
      'OpenFile=/run/systemd/notify:notify:\n'
  )
  const good = await sdnotify(['doctor', '--unit', 'api.service', '--json'], env)
  const report = JSON.parse(good.stdout) as { checks: { status: string }[]; transports: unknown[] }
  t.match(report, { manager: 'system', simulated: true, transport: 'fd', add: [] })
  t.ok(
    report.checks.every((check: { status: string }) => check.status === 'ok'),
    'every check ok'
  )
  t.match(report.transports[0], { name: 'fd', usable: true })

  writeFileSync(props, 'Id=nope.service\nLoadState=not-found\n')
  const missing = await sdnotify(['doctor', '--unit', 'nope.service'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /nope\.service was not found by the system manager/)
})
