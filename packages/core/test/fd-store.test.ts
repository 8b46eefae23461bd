// Issue 12: the listening socket survives restarts in systemd's fd store (core's primitives).
import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  DEBIAN_ROOT,
  debianRootSkipReason,
  type Manager,
  readEvents,
  startLoad,
  startManager,
  systemdSkipReason,
  waitForEvents,
} from '@sdnotify/systemd-harness'
import { addressMismatch, createNotifier, fdStoreName, storeServerSocket } from '../src/index.js'
import { parseSockaddr } from '../src/socket-address.js'
import { fakeManager } from '../src/testing.js'

const repo = fileURLToPath(new URL('../../..', import.meta.url))
const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
const fixture = fileURLToPath(new URL('../fixtures/fd-store-server.mjs', import.meta.url))

t.test('parseSockaddr reads what getsockname(2) fills in', (t) => {
  const v4 = Buffer.alloc(16)
  v4.writeUInt16LE(2, 0)
  v4.writeUInt16BE(3000, 2)
  Buffer.from([127, 0, 0, 1]).copy(v4, 4)
  t.same(parseSockaddr(v4), { family: 'IPv4', address: '127.0.0.1', port: 3000 })
  const v6 = Buffer.alloc(28)
  v6.writeUInt16LE(10, 0)
  v6.writeUInt16BE(8443, 2)
  v6[23] = 1 // ::1
  t.same(parseSockaddr(v6), { family: 'IPv6', address: '::1', port: 8443 })
  const unix = Buffer.concat([Buffer.from([1, 0]), Buffer.from('/run/app.sock\0')])
  t.same(parseSockaddr(unix), { family: 'unix', path: '/run/app.sock' })
  const abstract = Buffer.concat([Buffer.from([1, 0, 0]), Buffer.from('app')])
  t.same(parseSockaddr(abstract), { family: 'unix', path: '@app' })
  t.equal(parseSockaddr(Buffer.from([99, 0, 1, 2])), undefined, 'an unknown family')
  t.end()
})

t.test('addressMismatch: a stored socket is reused only for the address the configuration asks for', (t) => {
  const v4 = { family: 'IPv4', address: '127.0.0.1', port: 3000 } as const
  t.equal(addressMismatch(v4, { port: 3000, host: '127.0.0.1' }), undefined)
  t.equal(addressMismatch(v4, { port: 3000, host: 'localhost' }), undefined, 'localhost is loopback')
  t.equal(addressMismatch(v4, { port: 0, host: '127.0.0.1' }), undefined, 'port 0: any port will do')
  t.match(
    addressMismatch(v4, { port: 3001, host: '127.0.0.1' }),
    /bound to 127\.0\.0\.1:3000.*asks for 127\.0\.0\.1:3001/
  )
  t.match(addressMismatch(v4, { port: 3000, host: '0.0.0.0' }), /asks for 0\.0\.0\.0:3000/, 'another interface')
  t.match(addressMismatch(v4, { port: 3000 }), /asks for \*:3000/, 'no host means every interface')
  t.equal(addressMismatch({ family: 'IPv6', address: '::', port: 3000 }, { port: 3000 }), undefined)
  t.equal(
    addressMismatch({ family: 'IPv6', address: '::1', port: 80 }, { port: 80, host: '0:0:0:0:0:0:0:1' }),
    undefined
  )
  t.match(addressMismatch(v4, { path: '/run/app.sock' }), /asks for \/run\/app\.sock/)
  t.equal(addressMismatch({ family: 'unix', path: '/run/app.sock' }, { path: '/run/app.sock' }), undefined)
  t.match(addressMismatch({ family: 'unix', path: '/run/app.sock' }, { port: 3000 }), /asks for a TCP port/)
  t.end()
})

t.test('fdStoreName validates the adapters\' fdStore option', (t) => {
  t.equal(fdStoreName(undefined), undefined)
  t.equal(fdStoreName(false), undefined)
  t.equal(fdStoreName(true), 'http')
  t.equal(fdStoreName({}), 'http')
  t.equal(fdStoreName({ name: 'admin' }), 'admin')
  t.equal(fdStoreName({ name: 'admin api' }), 'admin api', 'spaces are fine in an FDNAME')
  for (const bad of [{ name: 'a:b' }, { name: '' }, { name: 'x'.repeat(256) }, 'yes', null]) {
    t.throws(
      () => fdStoreName(bad),
      { name: 'SdNotifyError', code: 'ERR_SDNOTIFY_INVALID_OPTION', field: /^fdStore/ },
      JSON.stringify(bad)
    )
  }
  t.end()
})

const listening = (server: Server, target: object) => new Promise<void>((resolve) => server.listen(target, resolve))

/** Runs `script` in a child that has `fd` as its descriptor 3 and LISTEN_* naming it, as systemd would pass it. */
function withPassedFd (
  fd: number,
  names: string,
  script: string
): Promise<{ code: number | null; out: string; err: string }> {
  const setup = `process.env.LISTEN_FDS = '1'; process.env.LISTEN_PID = String(process.pid)
process.env.LISTEN_FDNAMES = ${JSON.stringify(names)}
const core = await import(${JSON.stringify(dist)})
const warnings = []
const warn = (message) => warnings.push(message)
`
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', setup + script], {
      stdio: ['ignore', 'pipe', 'pipe', fd],
      env: { PATH: process.env.PATH },
    })
    let out = ''
    let err = ''
    child.stdout?.on('data', (chunk) => (out += chunk))
    child.stderr?.on('data', (chunk) => (err += chunk))
    child.on('close', (code) => resolve({ code, out, err }))
  })
}

t.test('findPassedSocket: the passed socket when it matches, closed and marked stale when it does not', async (t) => {
  const server = createServer()
  await listening(server, { port: 0, host: '127.0.0.1' })
  t.teardown(() => server.close())
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  const { port } = server.address() as { port: number }
  const match = await withPassedFd(
    fd,
    'http',
    `const config = { port: ${port}, host: '127.0.0.1' }
console.log(JSON.stringify({ found: core.findPassedSocket({ name: 'http', config, warn }),
  again: core.findPassedSocket({ name: 'http' }) ?? null, warnings }))`
  )
  t.equal(match.code, 0, match.err)
  t.same(JSON.parse(match.out), {
    found: { fd: 3, name: 'http', address: { family: 'IPv4', address: '127.0.0.1', port } },
    again: null, // a second listener does not get the same descriptor
    warnings: [],
  })
  const byName = await withPassedFd(fd, 'admin', 'console.log(core.findPassedSocket({ name: \'http\' }) === undefined)')
  t.equal(byName.out.trim(), 'true', 'by name')

  // The configuration moved to another port: the stale socket is closed here, and removed from the store
  // (FDSTOREREMOVE=1, FDNAME=http) before the new one is stored under that name.
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const moved = await withPassedFd(
    fd,
    'http',
    `process.env.NOTIFY_SOCKET = ${JSON.stringify(manager.address)}
const found = core.findPassedSocket({ name: 'http', config: { port: ${port + 1}, host: '127.0.0.1' }, warn })
let closed = false
try { (await import('node:fs')).fstatSync(3) } catch (error) { closed = error.code === 'EBADF' }
const { createServer } = await import('node:net')
const fresh = createServer()
await new Promise((resolve) => fresh.listen({ port: 0, host: '127.0.0.1' }, resolve))
const notifier = core.createNotifier()
const stored = await core.storeServerSocket(notifier, fresh, 'http', { warn })
console.log(JSON.stringify({ found: found ?? null, closed, stored, warnings }))
fresh.close(); await notifier.close()`
  )
  t.equal(moved.code, 0, moved.err)
  const result = JSON.parse(moved.out) as { found: unknown; closed: boolean; stored: boolean; warnings: string[] }
  t.equal(result.found, null, 'not used')
  t.equal(result.closed, true, 'fd 3 was closed in the process')
  t.equal(result.stored, true)
  const mismatch = `is bound to 127\\.0\\.0\\.1:${port}, the configuration asks for 127\\.0\\.0\\.1:${port + 1}`
  t.match(result.warnings[0], new RegExp(`"http" \\(fd 3\\) ${mismatch}`))
  await manager.waitFor({ FDSTORE: '1' })
  const messages = manager.datagrams
  t.equal(messages[0]?.text, 'FDSTOREREMOVE=1\nFDNAME=http', 'the stale socket is removed first')
  t.equal(messages[1]?.text, 'FDSTORE=1\nFDNAME=http\nFDPOLL=0', 'then the new one is stored under the name')
  t.equal(messages[1]?.fds, 1, 'with its descriptor')
})

t.test('storeServerSocket: false when not under systemd; a clear warning for a server that does not ' +
  'listen', async (t) => {
  t.equal(await storeServerSocket(createNotifier({ env: {} }), createServer(), 'http'), false)
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const notifier = createNotifier({ env: { NOTIFY_SOCKET: manager.address } })
  t.teardown(() => notifier.close())
  const warnings: string[] = []
  t.equal(await storeServerSocket(notifier, createServer(), 'http', { warn: (m) => warnings.push(m) }), false)
  t.match(warnings, [/fdStore needs a listening Node server/])
})

// ---- real systemd ------------------------------------------------------------------------------------------

interface Scenario {
  unit: string
  log: string
  port: number
}

async function fdStoreService (sd: Manager, fdStore: boolean, lines: string[] = []): Promise<Scenario> {
  const env = { SDN_BOOT_MS: '300', ...(fdStore ? { SDN_FDSTORE: 'http' } : {}) }
  const service = [
    ...(fdStore ? ['FileDescriptorStoreMax=1'] : []),
    'Restart=on-failure',
    'RestartSec=0',
    'TimeoutStopSec=10s',
    ...lines,
  ]
  const { unit, log, port } = await sd.notifyApp(fixture, env, service)
  // StartLimitBurst=5 per 10 s would fail a unit restarted this often, and a failed unit loses its store.
  const text = await import('node:fs/promises')
    .then((fs) => fs.readFile(sd.path(`/run/user/0/systemd/user/${unit}`), 'utf8'))
  sd.writeUnit(unit, text.replace('[Unit]', '[Unit]\nStartLimitIntervalSec=0'))
  await sd.daemonReload()
  return { unit, log, port }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Five `systemctl restart`s while 4 clients make fresh connections. */
async function restartsUnderLoad (sd: Manager, scenario: Scenario, restart: (n: number) => Promise<void>) {
  const start = await sd.systemctl(['start', scenario.unit])
  if (start.code !== 0) throw new Error(`start failed: ${start.stderr}`)
  const load = startLoad({ port: scenario.port })
  await sleep(300)
  for (let i = 0; i < 5; i++) {
    await restart(i)
    await sleep(400)
  }
  const result = await load.stop()
  const props = await sd.show(scenario.unit, ['ActiveState', 'NRestarts', 'NFileDescriptorStore', 'Result'])
  await sd.systemctl(['stop', scenario.unit])
  return { result, props }
}

const listeners = (log: string) => readEvents(log).filter((e) => e.event === 'listening')

function runOn (name: string, skip: string | undefined, managerOptions: () => Parameters<typeof startManager>[0]) {
  t.test(name, { skip }, async (t) => {
    const sd = await startManager(managerOptions())
    t.teardown(() => sd.stop())

    t.test('5 × systemctl restart under load: refused connections without the store, none with it', async (t) => {
      const plain = await fdStoreService(sd, false)
      const without = await restartsUnderLoad(sd, plain, async () => { await sd.systemctl(['restart', plain.unit]) })
      t.ok(
        without.result.refused > 0,
        `plain Type=notify refuses connections during restarts (${without.result.refused} refused)`
      )

      const stored = await fdStoreService(sd, true)
      const { result, props } = await restartsUnderLoad(sd, stored, async () => {
        await sd.systemctl(['restart', stored.unit])
      })
      t.equal(result.refused, 0, `no refused connection with the fd store (${JSON.stringify(result)})`)
      t.equal(result.inFlight, 0, 'no request failed in flight: the old process drained before exiting')
      t.ok(result.ok > 100, `${result.ok} requests served`)
      t.equal(props.NFileDescriptorStore, '1', 'systemd holds exactly one descriptor')
      const passed = listeners(stored.log).map((e) => (e.passed as { name?: string } | null)?.name ?? 'bound')
      t.same(
        passed,
        ['bound', 'http', 'http', 'http', 'http', 'http'],
        'the first start binds, every restart gets the stored socket'
      )
    })

    t.test('crash (exit 1, Restart=on-failure) and watchdog restarts under load: no refused connection', async (t) => {
      const stored = await fdStoreService(sd, true, ['WatchdogSec=1'])
      const { result, props } = await restartsUnderLoad(sd, stored, async (i) => {
        const { MainPID } = await sd.show(stored.unit, ['MainPID'])
        process.kill(Number(MainPID), i % 2 === 0 ? 'SIGUSR1' : 'SIGUSR2') // crash, or a wedged loop (watchdog)
        const restarted = (p: Record<string, string>) => p.MainPID !== MainPID && p.ActiveState === 'active'
        await sd.waitFor(stored.unit, restarted, 15_000, ['MainPID', 'ActiveState'])
      })
      t.equal(result.refused, 0, `no refused connection (${JSON.stringify(result.errors)})`)
      t.comment(`requests in flight on the dying processes: ${result.inFlight} (counted apart; they were accepted)`)
      t.equal(props.NRestarts, '5', 'five restarts')
      const onStored = listeners(stored.log).filter((e) => e.passed !== null)
      t.equal(onStored.length, 5, 'each restart listened on the stored socket')
    })

    t.test('the configured address changed between restarts: the stale socket is removed, the new address ' +
      'bound', async (t) => {
      const stored = await fdStoreService(sd, true)
      t.equal((await sd.systemctl(['start', stored.unit])).code, 0)
      const path = sd.path(`/run/user/0/systemd/user/${stored.unit}`)
      const fs = await import('node:fs/promises')
      const newPort = stored.port + 1
      await fs.writeFile(path, (await fs.readFile(path, 'utf8')).replace(`PORT=${stored.port}`, `PORT=${newPort}`))
      await sd.daemonReload()
      t.equal((await sd.systemctl(['restart', stored.unit])).code, 0)
      const [, second] = await waitForEvents(stored.log, 'listening', 2)
      t.equal(second?.passed, null, 'the stored socket was not used')
      t.match((second?.address as { port?: number })?.port, newPort, 'the new port is bound')
      const [warning] = await waitForEvents(stored.log, 'warning', 1)
      t.match(warning?.message, `is bound to 127.0.0.1:${stored.port}, the configuration asks for 127.0.0.1:${newPort}`)
      const props = await sd.show(stored.unit, ['NFileDescriptorStore', 'StatusText'])
      t.equal(props.NFileDescriptorStore, '1', 'the old socket was removed: only the new one is stored')
      t.equal(props.StatusText, `Listening on http://127.0.0.1:${newPort}`)
      await sd.systemctl(['restart', stored.unit])
      const third = (await waitForEvents(stored.log, 'listening', 3))[2]
      const thirdPort = (third?.passed as { address?: { port?: number } })?.address?.port
      t.match(thirdPort, newPort, 'the next restart reuses the new socket')
      await sd.systemctl(['stop', stored.unit])
    })

    if (sd.version < 254) t.comment(`systemd ${sd.version} has no FileDescriptorStorePreserve=: tested on 257`)
    else {
      t.test('FileDescriptorStorePreserve= (systemd ≥ 254): restart keeps the store, no releases it', async (t) => {
        for (const [preserve, expected] of [['restart', 'http'], ['no', null]] as const) {
          const stored = await fdStoreService(sd, true, [`FileDescriptorStorePreserve=${preserve}`])
          t.equal((await sd.systemctl(['start', stored.unit])).code, 0)
          t.equal((await sd.systemctl(['restart', stored.unit])).code, 0)
          const [, second] = await waitForEvents(stored.log, 'listening', 2)
          const name = (second?.passed as { name?: string } | null)?.name ?? null
          t.equal(name, expected, `FileDescriptorStorePreserve=${preserve}`)
          await sd.systemctl(['stop', stored.unit])
        }
      })
    }

    t.test('without FileDescriptorStoreMax=: restarts behave as today, warned about where systemd tells', async (t) => {
      const { unit, log } = await sd.notifyApp(fixture, { SDN_FDSTORE: 'http' }, ['TimeoutStopSec=10s'])
      t.equal((await sd.systemctl(['start', unit])).code, 0)
      await sd.systemctl(['restart', unit])
      const started = await waitForEvents(log, 'listening', 2)
      t.same(started.map((e) => e.passed), [null, null], 'nothing comes back')
      const warnings = await waitForEvents(log, 'warning', 1, sd.version >= 254 ? 5000 : 1000)
      if (sd.version >= 254) t.match(warnings[0]?.message, /no FileDescriptorStoreMax=.*Add FileDescriptorStoreMax=1/)
      else t.same(warnings, [], `systemd ${sd.version} does not set $FDSTORE: no false warning`)
      await sd.systemctl(['stop', unit])
    })
  })
}

runOn('fd store under systemd 252 (non-root service, NotifyAccess=main)', systemdSkipReason(), () => ({}))
runOn('fd store under systemd 257 (Debian trixie root)', debianRootSkipReason(), () => ({
  root: DEBIAN_ROOT,
  binds: [repo],
}))
