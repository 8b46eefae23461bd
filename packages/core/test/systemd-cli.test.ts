// The `sdnotify` command against real systemd (the host's, 252): `doctor` inside a unit (ExecStartPre=, as root
// and as nobody) and for a named unit, and a unit file from `sdnotify unit` started by the manager.
// Run under the shared lock: flock /tmp/sdnotify-systemd.lock npx tap test/systemd-cli.test.ts
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  canConnect,
  RUNTIME_DIR,
  SERVICE_UID,
  startManager,
  systemdSkipReason,
  testPort,
} from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const cli = join(pkg, 'dist/esm/cli.js')
const dist = join(pkg, 'dist/esm/index.js')
const nobody = `/usr/bin/setpriv --reuid=${SERVICE_UID} --regid=${SERVICE_UID} --clear-groups`
const skip = systemdSkipReason()
if (skip) t.comment(`skipping the sdnotify command's real-systemd tests: ${skip}`)

function run (command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code) || 1 : 0, stdout, stderr })
    })
  })
}

t.test('sdnotify doctor and sdnotify unit under a real systemd manager', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())
  /** `sdnotify …` run in the manager's namespace, as `systemctl --user` is (from outside any unit). */
  const outside = (args: string[]) =>
    run('/usr/bin/nsenter', [
      '-t',
      String(sd.pid),
      '-m',
      '-r',
      '--',
      '/usr/bin/env',
      '-i',
      `XDG_RUNTIME_DIR=${RUNTIME_DIR}`,
      'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
      sd.node,
      cli,
      ...args,
    ])

  t.test('doctor in ExecStartPre= of a Type=notify unit names the transport and what the unit lacks', async (t) => {
    const app = join(sd.scratch, 'app.cjs')
    writeFileSync(
      app,
      `require(${JSON.stringify(dist)}).createNotifier().ready('up'); setInterval(() => {}, 1 << 30)\n`
    )
    const asRoot = join(sd.scratch, 'doctor-root.txt')
    const asNobody = join(sd.scratch, 'doctor-nobody.txt')
    const doctor = (out: string) => `/bin/sh -c 'exec ${sd.node} ${cli} doctor > ${out} 2>&1'`
    await sd.writeService('doc', app, [], {
      service: [
        'Type=notify',
        // Control processes get NOTIFY_SOCKET only with NotifyAccess=exec or all (service_exec_needs_notify_socket()).
        'NotifyAccess=all',
        `ExecStartPre=${doctor(asRoot)}`,
        `ExecStartPre=${nobody} ${doctor(asNobody)}`,
        'TimeoutStartSec=30s',
      ],
    })
    const start = await sd.systemctl(['start', 'doc.service'])
    t.equal(start.code, 0, `the unit starts, doctor included ${start.stderr}`)
    t.equal((await sd.show('doc.service')).StatusText, 'up')

    // As root, doctor reads its own unit with systemctl --user show: definite answers.
    const root = readFileSync(asRoot, 'utf8')
    t.match(
      root,
      new RegExp(`^systemd: ${sd.version} \\(the user manager\\), user manager$`, 'm'),
      `the manager's version\n${root}`
    )
    t.match(root, /^unit: doc\.service \(this process's cgroup\); settings from systemctl --user show$/m)
    t.match(root, /^transport: koffi \(for the unit's main process, from its settings\)$/m)
    t.match(root, /^ {2}loading: koffi loaded$/m)
    t.match(root, /^ {2}ok +Type= +Type=notify: systemd waits for READY=1$/m)
    t.match(root, /^ {2}ok +NotifyAccess= +NotifyAccess=all/m)
    t.match(root, /^ {2}missing {3}WatchdogSec= +no watchdog/m)
    t.match(root, sd.version < 253 ? /^ {2}n\/a +OpenFile= +needs systemd 253/m : /^ {2}suggested OpenFile=/m)
    t.match(root, /^ {2}suggested FileDescriptorStoreMax= +no fd store/m)
    t.match(root, /^add to \[Service\]:\n {2}WatchdogSec=30s\n/m)

    // As nobody, systemctl may not ask the manager: the environment is all there is, and doctor says so.
    const user = readFileSync(asNobody, 'utf8')
    t.match(
      user,
      /settings from the environment \(systemctl --user show failed/,
      `no systemctl show for nobody\n${user}`
    )
    t.match(user, new RegExp(`^systemd: ${sd.version} \\(systemctl --version\\)`, 'm'))
    t.match(user, /^environment: .*NOTIFY_SOCKET=\/run\/user\/0\/systemd\/notify/m)
    t.match(user, /^transport: koffi$/m)
    t.match(user, /^ {2}ok +Type= +NOTIFY_SOCKET is set/m)
    t.match(
      user,
      /^ {2}unknown {3}WatchdogSec= +WATCHDOG_USEC is not set: no WatchdogSec=, or this is a control process/m
    )
    await sd.systemctl(['stop', 'doc.service'])
  })

  t.test('doctor --unit NAME --user, from outside the unit', async (t) => {
    sd.writeUnit('plain.service', '[Service]\nExecStart=/bin/sleep 1000\n')
    sd.writeUnit(
      'good.service',
      '[Service]\nType=notify\nWatchdogSec=10s\nFileDescriptorStoreMax=2\nExecStart=/bin/sleep 1000\n'
    )
    await sd.daemonReload()
    const plain = await outside(['doctor', '--unit', 'plain', '--user'])
    t.equal(plain.code, 0, plain.stderr)
    t.match(plain.stdout, /^unit: plain\.service \(--unit\); settings from systemctl --user show$/m)
    t.match(plain.stdout, /^ {2}missing {3}Type= +Type=simple: systemd does not wait for READY=1/m)
    t.match(
      plain.stdout,
      /^ {2}missing {3}NotifyAccess= +NotifyAccess=none/m,
      'Type=simple defaults to NotifyAccess=none'
    )
    t.match(plain.stdout, /^add to \[Service\]:\n {2}Type=notify\n {2}NotifyAccess=main\n {2}WatchdogSec=30s\n/m)
    const doctor = await outside(['doctor', '--unit', 'good.service', '--user', '--json'])
    const good = JSON.parse(doctor.stdout) as { checks: unknown; add: string[] }
    // systemd 252 says WatchdogUSec=infinity for a unit that never started: doctor reads the unit file then.
    t.match(good, {
      simulated: true,
      transport: 'koffi',
      unit: { properties: { Type: 'notify', FileDescriptorStoreMax: '2' } },
    })
    t.match(good.checks, [{}, {}, { setting: 'WatchdogSec=', status: 'ok', detail: /^WatchdogSec=10s/ }])
    t.same(good.add, sd.version < 253 ? [] : ['OpenFile=/run/user/0/systemd/notify:notify'])
    const missing = await outside(['doctor', '--unit', 'nothere.service', '--user'])
    t.equal(missing.code, 1)
    t.match(missing.stderr, /nothere\.service was not found by the user manager/)
  })

  t.test('a unit file from sdnotify unit starts the Express example: active once listening, watchdog on', async (t) => {
    const port = testPort()
    const example = join(pkg, '../../examples/express')
    const generated = await run(cli, [
      'unit',
      '--name',
      'gen',
      '--user',
      'nobody',
      '--watchdog',
      '10s',
      '--env',
      `PORT=${port}`,
      '--working-directory',
      example,
      '--',
      'node',
      'app.mjs',
    ])
    t.equal(generated.code, 0, generated.stderr)
    // What a user manager cannot do, adjusted: User= (setpriv instead, which needs the capabilities that
    // CapabilityBoundingSet= removes). And this VM's private manager fails ProtectHome=, ProtectKernelTunables=
    // and ProtectKernelLogs= with 226/NAMESPACE even for /bin/true; systemd-analyze verify checks them (cli.test.ts).
    const adjusted = generated.stdout
      .replace(/^User=nobody$/m, '')
      .replace(/^CapabilityBoundingSet=$/m, '')
      .replace(/^(ProtectHome|ProtectKernelTunables|ProtectKernelLogs)=.*$/gm, '')
      // PrivateTmp= gives the service an empty /tmp: a checkout under /tmp (CI's fresh clone) would vanish.
      .replace(/^PrivateTmp=.*$/m, /^\/(var\/)?tmp\//.test(example) ? '' : '$&')
      .replace(/^ExecStart=/m, `ExecStart=${nobody} `)
    t.match(adjusted, /^ExecStart=\/usr\/bin\/setpriv .* \/\S+\/node app\.mjs$/m, 'node resolved to an absolute path')
    sd.writeUnit('gen.service', adjusted)
    await sd.daemonReload()
    const start = await sd.systemctl(['start', 'gen.service'])
    t.equal(start.code, 0, `systemctl start gen.service ${start.stderr}`)
    t.equal(await canConnect(port), true, 'listening when start returns')
    const props = await sd.show('gen.service', [
      'ActiveState',
      'StatusText',
      'WatchdogUSec',
      'NotifyAccess',
      'Restart',
      'FileDescriptorStoreMax',
      'ProtectSystem',
    ])
    t.match(props, {
      ActiveState: 'active',
      StatusText: `Listening on http://127.0.0.1:${port}`,
      WatchdogUSec: '10s',
      NotifyAccess: 'main',
      Restart: 'on-failure',
      FileDescriptorStoreMax: '1',
      ProtectSystem: 'strict',
    })
    const stop = await sd.systemctl(['stop', 'gen.service'])
    t.equal(stop.code, 0)
    t.equal((await sd.show('gen.service')).Result, 'success', 'a clean stop')
  })
})
