// fd-store primitives at their edges: what `systemctl --version` may run and inherit, a warn callback that
// throws, a server without a listening handle (Bun), FDNAME rules, and close-on-exec for passed descriptors
// (one libc binding, applied only to the descriptor that was passed). Children run the built bundle.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createNotifier, fdStoreName, storeServerSocket } from '../src/index.js'
import { fakeManager } from '../src/testing.js'

const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))

interface Child {
  code: number | null
  out: string
  err: string
}

/**
 * The first passed descriptor's number in the children. Node (20 to 26, checked with strace) marks descriptors
 * 0 to 16 close-on-exec itself at start-up; those above are inherited by its children unless marked.
 */
const FIRST = 20

/**
 * Runs `script` (an ES module) in a fresh node process with `core` imported from the bundle. `fds` become its
 * descriptors FIRST, FIRST + 1…, named in LISTEN_FDNAMES (`names`, after FIRST − 3 unused ones from 3 on) and
 * meant for it (LISTEN_PID), as systemd passes them.
 */
function child (script: string, options: { fds?: number[]; names?: string[]; env?: object; cwd?: string } = {}) {
  const fds = options.fds ?? []
  const unused = Array.from({ length: FIRST - 3 }, () => 'unused')
  const names = [...unused, ...(options.names ?? fds.map(() => 'http'))]
  const listen =
    fds.length === 0
      ? ''
      : `process.env.LISTEN_FDS = '${names.length}'; process.env.LISTEN_PID = String(process.pid)
process.env.LISTEN_FDNAMES = ${JSON.stringify(names.join(':'))}\n`
  const setup = `${listen}const core = await import(${JSON.stringify(dist)})
const { readFileSync } = await import('node:fs')
/** Whether descriptor n is close-on-exec (/proc's fdinfo shows O_CLOEXEC among the flags). */
const cloexec = (n) =>
  (parseInt(/^flags:\\s+(\\d+)/m.exec(readFileSync('/proc/self/fdinfo/' + n, 'utf8'))[1], 8) & 0o2000000) !== 0
`
  return new Promise<Child>((resolve) => {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', setup + script], {
      stdio: ['ignore', 'pipe', 'pipe', ...(fds.length === 0 ? [] : [...unused.map(() => 'ignore' as const), ...fds])],
      env: { PATH: process.env.PATH, ...options.env },
      cwd: options.cwd,
    })
    let out = ''
    let err = ''
    proc.stdout?.on('data', (chunk) => (out += chunk))
    proc.stderr?.on('data', (chunk) => (err += chunk))
    proc.on('close', (code) => resolve({ code, out, err }))
  })
}

/** A directory holding a fake `systemctl` (a shell script), removed after the test. */
function fakeSystemctl (t: { teardown(fn: () => void): void }, body: string) {
  const dir = mkdtempSync(join(tmpdir(), 'sdnotify-systemctl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'bin'))
  const script = join(dir, 'bin', 'systemctl')
  writeFileSync(script, `#!/bin/sh\n${body}\n`)
  chmodSync(script, 0o755)
  return { dir, bin: join(dir, 'bin') }
}

const listening = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve))
  return (server as unknown as { _handle: { fd: number } })._handle.fd
}

t.test('fdStoreName follows the protocol: spaces are fine, the error names fdStore.name', (t) => {
  t.equal(fdStoreName({ name: 'admin api' }), 'admin api', 'systemd accepts spaces in FDNAME')
  t.equal(fdStoreName({ name: 'x'.repeat(255) }), 'x'.repeat(255))
  for (const [name, rule] of [
    ['a:b', /must not contain ':'/],
    ['', /1 to 255 characters/],
    ['x'.repeat(256), /1 to 255 characters/],
    ['caf\u00e9', /printable ASCII/],
    [3, /must be a string/],
  ] as const) {
    t.throws(() => fdStoreName({ name }), { code: 'ERR_SDNOTIFY_INVALID_OPTION', field: 'fdStore.name', message: rule })
  }
  t.throws(
    () => fdStoreName({ name: 'a:b' }, 'sdNotify.fdStore'),
    { name: 'SdNotifyError', field: 'sdNotify.fdStore.name' }
  )
  t.end()
})

t.test('storeServerSocket: a server without a listening handle (Bun, or not listening) warns once, ' +
  'resolves false', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const notifier = createNotifier({ env: { NOTIFY_SOCKET: manager.address } })
  t.teardown(() => notifier.close())
  const warnings: string[] = []
  const warn = (message: string) => warnings.push(message)
  t.equal(await storeServerSocket(notifier, createServer(), 'http', { warn }), false)
  t.equal(await storeServerSocket(notifier, { listening: true }, 'http', { warn }), false)
  t.equal(warnings.length, 1, 'once')
  t.match(warnings[0], /fdStore needs a listening Node server .*not stored/)
  // Sends go out in call order: a marker sent last arrives after anything sent before it.
  await notifier.send({ extra: { X_MARK: 1 } })
  await manager.waitFor({ X_MARK: '1' })
  t.same(manager.datagrams.map((d) => d.text), ['X_MARK=1'], 'nothing was sent')
})

t.test('systemctl --version is never run from a relative PATH entry', async (t) => {
  const { dir } = fakeSystemctl(t, `touch "${'$'}SDN_MARK"; echo "systemd 999 (planted)"`)
  const mark = join(dir, 'ran')
  const result = await child('console.log(String(await core.systemdVersion()))', {
    cwd: dir,
    env: { PATH: `bin:${process.env.PATH}`, SDN_MARK: mark },
  })
  t.equal(result.code, 0, result.err)
  t.not(result.out.trim(), '999', `the planted systemctl did not answer (${result.out.trim()})`)
  t.equal(existsSync(mark), false, 'and did not run')
})

t.test('a warn callback that throws breaks nothing (no unhandled rejection); systemctl inherits no passed ' +
  'socket', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const passed = createServer()
  const fd = await listening(passed)
  t.teardown(() => passed.close())
  // systemd 257 says nothing about the store in $FDSTORE here: the missing FileDescriptorStoreMax= is warned about.
  const { bin, dir } = fakeSystemctl(t, `ls /proc/$$/fd > "${'$'}SDN_FDS"; echo "systemd 257 (257.9-1)"`)
  const fds = join(dir, 'fds')
  const script = `process.on('unhandledRejection', (error) => console.log('unhandled: ' + error.message))
core.listenFds() // fd ${FIRST} is passed but unused: it must not leak into child processes
const { createServer } = await import('node:net')
const server = createServer()
await new Promise((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve))
let warned = 0
const warn = () => { warned++; throw new Error('a bug in the warn callback') }
const stored = await core.storeServerSocket(core.createNotifier(), server, 'admin', { warn })
for (let i = 0; i < 100 && warned === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
await new Promise((resolve) => setTimeout(resolve, 100))
console.log(JSON.stringify({ stored, warned }))
server.close()`
  const result = await child(script, {
    fds: [fd],
    env: { PATH: `${bin}:${process.env.PATH}`, NOTIFY_SOCKET: manager.address, SDN_FDS: fds },
  })
  t.equal(result.code, 0, result.err)
  t.notMatch(result.out, /unhandled/, 'no unhandled rejection')
  t.same(JSON.parse(result.out.trim().split('\n').at(-1) ?? '{}'), { stored: true, warned: 1 }, 'stored, warned once')
  const inherited = (await import('node:fs')).readFileSync(fds, 'utf8').split('\n').filter(Boolean).map(Number)
  t.notOk(
    inherited.includes(FIRST),
    `systemctl's descriptors: ${inherited.join(' ')} (not ${FIRST}, the passed socket)`
  )
})

t.test('inspecting a passed socket loads the one libc binding: the pending close-on-exec marks are ' +
  'applied', async (t) => {
  const passed = createServer()
  const fd = await listening(passed)
  t.teardown(() => passed.close())
  const script = `core.listenFds()
const before = cloexec(${FIRST})
const found = core.findPassedSocket({ name: 'http' })
console.log(JSON.stringify({ before, found: found?.fd ?? null, after: cloexec(${FIRST}) }))`
  const result = await child(script, { fds: [fd] })
  t.equal(result.code, 0, result.err)
  t.same(JSON.parse(result.out), { before: false, found: FIRST, after: true })
})

t.test('a passed descriptor closed, and its number reused, before koffi loads is not marked ' +
  'close-on-exec', async (t) => {
  const manager = await fakeManager()
  t.teardown(() => manager.close())
  const [a, b] = [createServer(), createServer()]
  const fds = [await listening(a), await listening(b)]
  t.teardown(() => {
    a.close()
    b.close()
  })
  const script = `core.listenFds()
const { closeSync } = await import('node:fs')
const { createRequire } = await import('node:module')
// The application closes the unused admin socket; something else gets the number (dup2: not close-on-exec).
const admin = ${FIRST + 1}
closeSync(admin)
const koffi = createRequire(${JSON.stringify(dist)})('koffi')
koffi.load('libc.so.6').func('int dup2(int, int)')(0, admin)
const reused = cloexec(admin)
await core.createNotifier({ env: { NOTIFY_SOCKET: ${JSON.stringify(manager.address)} }, transport: 'koffi' }).prepare()
console.log(JSON.stringify({ reused, passed: cloexec(${FIRST}), after: cloexec(admin) }))`
  const result = await child(script, { fds, names: ['http', 'admin'] })
  t.equal(result.code, 0, result.err)
  t.same(JSON.parse(result.out), { reused: false, passed: true, after: false }, 'only the passed socket was marked')
})
