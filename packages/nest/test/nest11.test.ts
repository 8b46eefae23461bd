// The peer range says NestJS 11 and 12; the workspace develops against 12. This installs the packed
// @sdnotify/core and @sdnotify/nest tarballs next to NestJS 11 from the registry (install scripts blocked,
// as pnpm does by default), copies examples/nest's compiled CommonJS into that directory so that every
// `require` resolves there, and runs it under real systemd 252 as nobody.
import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { assertStartsListening, startManager, systemdSkipReason, waitForEvent } from '@sdnotify/systemd-harness'

const packages = fileURLToPath(new URL('../..', import.meta.url))
const exampleDist = fileURLToPath(new URL('../../../examples/nest/dist', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping the NestJS 11 test: ${skip}`)
const NEST_11 = [
  '@nestjs/common@^11',
  '@nestjs/core@^11',
  '@nestjs/platform-express@^11',
  '@nestjs/platform-fastify@^11',
  '@nestjs/terminus@^11',
  'reflect-metadata@^0.2',
  'rxjs@^7',
]

t.test('NestJS 11: the packed packages and the compiled example under systemd 252', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())
  const app = join(sd.scratch, 'nest11')
  mkdirSync(app)
  for (const name of ['core', 'nest']) {
    execFileSync('pnpm', ['pack', '--pack-destination', app], { cwd: join(packages, name), stdio: 'pipe' })
  }
  const tarballs = readdirSync(app).filter((f) => f.endsWith('.tgz')).map((f) => `./${f}`)
  t.equal(tarballs.length, 2, 'core and nest packed')
  writeFileSync(join(app, 'package.json'), '{ "name": "nest11-app", "private": true }\n')
  try {
    execFileSync('npm',
      ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', ...NEST_11, ...tarballs],
      { cwd: app, stdio: 'pipe', timeout: 300_000 })
  } catch (error) {
    // No registry, no proof: fail with the reason rather than pass without having tested NestJS 11.
    const output = String((error as { stderr?: Buffer }).stderr ?? error)
    throw new Error(`npm install of NestJS 11 failed (the registry must be reachable): ${output}`)
  }
  const version = (name: string) =>
    (JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  t.match(version('@nestjs/core'), /^11\./, `@nestjs/core ${version('@nestjs/core')}`)
  t.match(version('@nestjs/common'), /^11\./, `@nestjs/common ${version('@nestjs/common')}`)
  cpSync(exampleDist, join(app, 'dist'), { recursive: true })
  const main = join(app, 'dist/main.js')

  for (const platform of ['express', 'fastify']) {
    t.test(`platform-${platform}: active once the port accepts connections; stop sends STOPPING and completes ` +
      'the request in flight', async (t) => {
      const { unit, log, port } = await sd.notifyApp(main, { PLATFORM: platform }, ['TimeoutStopSec=15s'], 'nest11-',
        'EVENT_LOG')
      await assertStartsListening(t, sd, unit, port)
      t.same(await (await fetch(`http://127.0.0.1:${port}/`)).json(), { hello: 'world' })
      const request = fetch(`http://127.0.0.1:${port}/slow`).then(async (res) => ({ status: res.status, body: await res.text() }))
      await waitForEvent(log, 'slow request started')
      const stopping = sd.systemctl(['stop', unit])
      const during = await sd.waitFor(unit, (p) => (p.StatusText ?? '').startsWith('Shutting down (SIGTERM)'), 3000)
      t.match(during.StatusText, /^Shutting down \(SIGTERM\)/, 'STOPPING=1 with its status, while draining')
      t.same(await request, { status: 200, body: 'slow done' }, 'the request in flight completed')
      t.equal((await stopping).code, 0)
      t.match(await waitForEvent(log, 'onApplicationShutdown'), { signal: 'SIGTERM' })
    })
  }

  t.test('watchdog: a blocked event loop and a failing terminus indicator each get it restarted ' +
    '(Result=watchdog)', async (t) => {
    const a = await sd.notifyApp(main, {}, ['WatchdogSec=2', 'Restart=no'], 'nest11-', 'EVENT_LOG')
    const b = await sd.notifyApp(main, { DB_DOWN_AFTER_MS: '1500' }, ['WatchdogSec=2', 'Restart=no'], 'nest11-',
      'EVENT_LOG')
    t.equal((await sd.systemctl(['start', a.unit, b.unit])).code, 0)
    void fetch(`http://127.0.0.1:${a.port}/block`).catch(() => undefined)
    t.equal((await sd.waitFor(a.unit, (p) => p.Result === 'watchdog', 15_000)).Result, 'watchdog', 'blocked loop')
    t.equal((await sd.waitFor(b.unit, (p) => p.Result === 'watchdog', 15_000)).Result, 'watchdog',
      'terminus indicator down')
  })
})
