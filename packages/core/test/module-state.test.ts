// Issue 13: one module state per process however core is loaded, and installs everywhere.
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { coverageEnv } from '@sdnotify/systemd-harness'
import { fakeManager } from '../src/testing.js'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const dist = join(pkg, 'dist/esm/index.js')

function run (command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    // Asynchronous: the fake manager of a test must keep draining its socket meanwhile.
    execFile(command, args, { ...options, encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code) || 1 : 0, stdout, stderr })
    })
  })
}

const childEnv = (extra: Record<string, string>) => {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...coverageEnv(), ...extra }
  return env // no NODE_OPTIONS: tap's hooks must not reach the child
}

t.test('require() and import() give the same module: one environment snapshot, one SdNotifyError class', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const script = `
const cjs = require(${JSON.stringify(dist)})
import(${JSON.stringify(dist)}).then(async (esm) => {
  // The CommonJS side unsets the environment; the ES module side must still see it (one snapshot).
  const first = cjs.createNotifier({ unsetEnvironment: true })
  const second = esm.createNotifier()
  let crossClass = false
  try { cjs.encodeNotification({ status: 'a\\nb' }) } catch (error) { crossClass = error instanceof esm.SdNotifyError }
  const sent = await second.ready('from esm')
  console.log(JSON.stringify({
    same: cjs.createNotifier === esm.createNotifier && cjs.SdNotifyError === esm.SdNotifyError,
    first: first.enabled, second: second.enabled, crossClass, sent, unset: process.env.NOTIFY_SOCKET === undefined,
  }))
  await first.close(); await second.close()
})`
  const out = await run(process.execPath, ['-e', script], { env: childEnv({ NOTIFY_SOCKET: manager.address }) })
  t.equal(out.code, 0, out.stderr)
  t.same(JSON.parse(out.stdout), { same: true, first: true, second: true, crossClass: true, sent: true, unset: true })
  await manager.waitFor({ READY: '1' })
  t.same(manager.datagrams.map((d) => d.text), ['READY=1\nSTATUS=from esm'])
})

// process.platform as another OS sees it; NOTIFY_SOCKET set all the same (a stray variable on a laptop).
const asPlatform = (platform: string) => `Object.defineProperty(process, 'platform', {
  value: ${JSON.stringify(platform)},
})
const { createRequire } = require('node:module')
import(${JSON.stringify(dist)}).then(async (core) => {
  const notifier = core.createNotifier()
  const results = [await notifier.ready('x'), await notifier.status('y'), notifier.watchdog.start()]
  const loaded = Object.keys(require('node:module')._cache).filter((file) => /koffi|unix-dgram/.test(file))
  const fds = core.listenFds().length
  console.log(JSON.stringify({ enabled: notifier.enabled, results, loaded: loaded.length > 0, fds }))
  await notifier.close()
})`

t.test('off Linux every call is a no-op and nothing native is loaded, whatever the environment says', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const env = childEnv({ NOTIFY_SOCKET: manager.address, WATCHDOG_USEC: '2000000', LISTEN_FDS: '1', LISTEN_PID: '1' })
  for (const platform of ['darwin', 'win32']) {
    const out = await run(process.execPath, ['-e', asPlatform(platform)], { env })
    t.equal(out.code, 0, out.stderr)
    t.same(JSON.parse(out.stdout), { enabled: false, results: [false, false, false], loaded: false, fds: 0 }, platform)
  }
  // The control: the same script on Linux sends, and loads koffi (so the check above can fail).
  const linux = await run(process.execPath, ['-e', asPlatform('linux')], { env })
  t.equal(linux.code, 0, linux.stderr)
  t.match(JSON.parse(linux.stdout), { enabled: true, results: [true, true, true], loaded: true })
})

// npm's platform check reads process.platform: running npm's own CLI with it redefined is another OS to npm.
t.test('npm installs the packed package off Linux (npm run with process.platform redefined)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-os-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const packed = await run('pnpm', ['pack', '--pack-destination', dir], { cwd: pkg, env: process.env })
  t.equal(packed.code, 0, packed.stderr)
  const tarball = join(dir, readdirSync(dir).find((file) => file.endsWith('.tgz')) as string)
  // npm's CLI script as npm itself reports it: it exports its own path as $npm_execpath to what it runs.
  // `npm prefix -g` derives from node's own path (<prefix>/bin/node): wrong when that node is not npm's
  // (the Node 24 package).
  const located = await run('npm', ['exec', '--call', 'echo "$npm_execpath"'], { cwd: dir, env: process.env })
  const npmCli = located.stdout.trim()
  t.match(npmCli, /npm-cli\.js$/, `npm's CLI script: ${located.stderr}`)
  const install = async (platform: string, spec: string) => {
    const app = mkdtempSync(join(dir, `${platform}-`))
    writeFileSync(join(app, 'package.json'), '{ "name": "app", "private": true }\n')
    const preload = join(app, 'platform.cjs')
    writeFileSync(preload, `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} })\n`)
    const args = ['-r', preload, npmCli, 'install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline']
    return run(process.execPath, [...args, '--loglevel=error', spec], { cwd: app, env: process.env })
  }
  // win32 would also make npm use Windows paths; any non-Linux value exercises the same "os" check.
  for (const platform of ['darwin', 'freebsd']) {
    const out = await install(platform, tarball)
    t.equal(out.code, 0, `installs on ${platform}: ${out.stderr}`)
  }
  // The control: the same tarball with "os": ["linux"] (as core declared before) is refused there.
  const repack = mkdtempSync(join(dir, 'repack-'))
  await run('tar', ['xzf', tarball, '-C', repack])
  const manifest = join(repack, 'package')
  const json = JSON.parse(readFileSync(join(manifest, 'package.json'), 'utf8')) as Record<string, unknown>
  writeFileSync(join(manifest, 'package.json'), JSON.stringify({ ...json, os: ['linux'] }))
  const repacked = await run('npm', ['pack', '--pack-destination', repack, '--loglevel=error'], {
    cwd: manifest,
    env: process.env,
  })
  t.equal(repacked.code, 0, repacked.stderr)
  const refused = await install('darwin', join(repack, repacked.stdout.trim()))
  t.not(refused.code, 0, 'an os-restricted core is refused on darwin')
  t.match(refused.stderr, /EBADPLATFORM|notsup/)
})
