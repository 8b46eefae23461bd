import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { type FakeManager, fakeManager } from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const scenarios = fileURLToPath(new URL('./scenarios.mjs', import.meta.url))
const distCjs = fileURLToPath(new URL('../dist/cjs/index.js', import.meta.url))
const texts = (fake: FakeManager) => fake.messages.map((m) => m.text)

/**
 * Runs a scenario of test/scenarios.mjs against the fake manager (none when fake is null). Asynchronously:
 * the fake manager must keep reading its socket meanwhile.
 */
async function scenario(name: string, fake: FakeManager | null, arg?: string): Promise<Record<string, any>> {
  const env = { ...process.env }
  delete env.NOTIFY_SOCKET
  if (fake) env.FAKE = fake.address
  else delete env.FAKE
  // Through env -u: tap re-adds its hooks (NODE_OPTIONS) to children, and they install signal handlers.
  const { stdout } = await promisify(execFile)('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, scenarios, name, ...(arg ? [arg] : [])], { env, encoding: 'utf8', cwd: pkg })
  await new Promise((resolve) => setTimeout(resolve, 50)) // let the fake manager read the last datagrams
  return JSON.parse(stdout.trim().split('\n').pop() as string)
}

function withFake(t: Tap.Test): FakeManager {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  return fake
}
declare namespace Tap {
  type Test = { teardown(fn: () => void): void }
}

for (const platform of ['express', 'fastify']) {
  t.test(`platform-${platform}: READY=1 only once app.listen() binds, with the address; STOPPING=1 on close`, async (t) => {
    const fake = withFake(t)
    const result = await scenario('http', fake, platform)
    t.equal(result.body, 'hello')
    await fake.waitFor(3)
    t.same(texts(fake), [
      'STATUS=initialised, not listening',
      `READY=1\nSTATUS=Listening on http://127.0.0.1:${result.port}`,
      'STOPPING=1\nSTATUS=Shutting down',
    ], 'every lifecycle hook ran before listen, and none sent READY')
  })
}

t.test('no HTTP server (application context): READY=1 in onApplicationBootstrap', async (t) => {
  const fake = withFake(t)
  await scenario('context', fake)
  t.same(texts(fake).slice(0, 1), ['READY=1\nSTATUS=Worker ready'])
})

t.test('forRootAsync with useFactory and inject; SdNotifyService injectable anywhere (global)', async (t) => {
  const fake = withFake(t)
  t.same(await scenario('async', fake), { injected: true, sent: true })
  await fake.waitFor(2)
  t.same(texts(fake).slice(0, 2), ['READY=1\nSTATUS=Ready', 'STATUS=disk\nERRNO=5'])
})

t.test('extendStartTimeout keeps extending while a slow onModuleInit runs, and stops at READY', async (t) => {
  const fake = withFake(t)
  await scenario('extend', fake)
  const messages = texts(fake)
  const ready = messages.indexOf('READY=1\nSTATUS=Ready')
  t.ok(ready >= 4, `${ready} extensions during a 450 ms onModuleInit`)
  t.ok(messages.slice(0, ready).every((m) => m === 'EXTEND_TIMEOUT_USEC=1000000'))
  t.same(messages.slice(ready + 1), ['STOPPING=1\nSTATUS=Shutting down'], 'none after READY')
})

t.test('watchdog with terminus indicators: pings while up, none while down', async (t) => {
  const fake = withFake(t)
  const { unhealthy } = await scenario('terminus', fake)
  const messages = texts(fake)
  const down = messages.findIndex((m) => m.startsWith('STATUS=Unhealthy'))
  t.ok(down > 0, 'the unhealthy status was reported')
  t.ok(messages.slice(0, down).filter((m) => m === 'WATCHDOG=1').length >= 2, 'pings while the indicator was up')
  t.equal(messages.slice(down).filter((m) => m === 'WATCHDOG=1').length, 0, 'no ping after it went down')
  t.match(unhealthy[0], /health check failed/)
})

t.test('options are validated, naming the option', async (t) => {
  const { errors } = await scenario('invalid', null)
  t.match(errors[0], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'readyOn', message: /readyOn must be 'auto', 'listen' or 'bootstrap'/ })
  t.match(errors[1], { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'extendStartTimeout.extendMs' })
})

t.test('Test.createTestingModule without NOTIFY_SOCKET works and loads no native module', async (t) => {
  t.same(await scenario('testing', null), { ready: false, native: [], warned: false })
})

t.test('under systemd with no SIGTERM handler: one clear warning about enableShutdownHooks', async (t) => {
  const fake = withFake(t)
  const result = await scenario('testing', fake)
  t.equal(result.warned, true, JSON.stringify(result))
})

t.test('CommonJS require()', async (t) => {
  const out = execFileSync(process.execPath, ['-e', `require('reflect-metadata'); const m = require(${JSON.stringify(distCjs)}); console.log(typeof m.SdNotifyModule.forRoot, typeof m.SdNotifyModule.forRootAsync, typeof m.SdNotifyService)`], {
    encoding: 'utf8',
    cwd: pkg,
  })
  t.equal(out.trim(), 'function function function')
})
