// The published shape: the packed tarball installed with install scripts blocked (as pnpm does by default,
// or npm --ignore-scripts), used from CommonJS, under real systemd as a non-root user.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startManager, systemdSkipReason } from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const skip = systemdSkipReason()
if (skip) t.comment(`skipping the packed-install test: ${skip}`)

t.test('npm install --ignore-scripts of the tarball, required from CommonJS, works under systemd ' +
  '(koffi)', { skip }, async (t) => {
  const sd = await startManager()
  t.teardown(() => sd.stop())
  const app = join(sd.scratch, 'app')
  mkdirSync(app)
  execFileSync('pnpm', ['pack', '--pack-destination', app], { cwd: pkg, stdio: 'pipe' })
  const tarball = readdirSync(app).find((f) => f.endsWith('.tgz')) as string
  writeFileSync(join(app, 'package.json'), '{ "name": "packed-app", "private": true }\n')
  execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', `./${tarball}`],
    { cwd: app, stdio: 'pipe' })
  writeFileSync(
    join(app, 'app.cjs'),
    `const { appendFileSync } = require('node:fs')
const { createNotifier } = require('@sdnotify/core')
let unixDgram = 'loads'
try { require('unix-dgram') } catch (error) { unixDgram = error.message.split('\\n')[0] }
const notifier = createNotifier()
notifier.ready('packed via ' + notifier.transport).then(() => {
  appendFileSync(process.env.LOG, JSON.stringify({ transport: notifier.transport, unixDgram }) + '\\n')
})
setInterval(() => {}, 1 << 30)
`
  )
  await sd.writeService('packed', join(app, 'app.cjs'), [],
    { service: ['Type=notify', `Environment=LOG=${sd.scratch}/packed.log`, 'TimeoutStartSec=15s'] })
  const start = await sd.systemctl(['start', 'packed.service'])
  t.equal(start.code, 0, `starts ${start.stderr}`)
  const props = await sd.show('packed.service')
  t.equal(props.ActiveState, 'active')
  t.equal(props.StatusText, 'packed via koffi')
  const log = JSON.parse(readFileSync(`${sd.scratch}/packed.log`, 'utf8')) as { transport: string; unixDgram: string }
  t.equal(log.transport, 'koffi')
  // unix-dgram is an optional peer dependency (issue 13): never installed, so never compiled, unless the app asks.
  t.match(log.unixDgram, /Cannot find module 'unix-dgram'/, 'unix-dgram is not installed with the package')
  t.notOk(existsSync(join(app, 'node_modules/unix-dgram')), 'no node_modules/unix-dgram')
  await sd.systemctl(['stop', 'packed.service'])
})
