// The runtime matrix: real-systemd suites with the services on Node 20, 22, 26 and Bun (scripts/runtimes.mjs
// fetches them; the primary Node 24, which runs the test command, is covered by the package suites). The tap runner
// stays on this node: only the services of the harness's host (252) manager change runtime, through
// $SDNOTIFY_SERVICE_RUNTIME. One line per runtime × suite, then "runtime matrix: N passed, N failed"; exit status 1
// when any failed. `node scripts/runtime-matrix.mjs [name…]` runs only the named runtimes (node20, node22, node24,
// node26, bun).
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { systemdSkipReason } from '@sdnotify/systemd-harness'
import { describeRuntime, ensureRuntime, MATRIX, RUNTIMES } from './runtimes.mjs'

const root = new URL('..', import.meta.url).pathname
// Each adapter's readiness test (active only once the port accepts connections), on systemd 252: tap's first
// --grep picks the top-level test, the second its subtests.
const readiness = (name) => ({
  name: `${name} readiness`,
  dir: `packages/${name}`,
  args: ['test/systemd.test.ts', '--grep=systemd 252', '--grep=active only once'],
})
const SUITES = [
  { name: 'core systemd-252', dir: 'packages/core', args: ['test/systemd-252.test.ts'] },
  readiness('fastify'),
  readiness('express'),
  readiness('nest'),
]

const wanted = process.argv.slice(2)
const runtimes = wanted.length > 0 ? RUNTIMES.filter((runtime) => wanted.includes(runtime.name)) : MATRIX
let passed = 0
let failed = 0
const started = Date.now()
const seconds = (since) => `${Math.round((Date.now() - since) / 1000)} s`
const report = (ok, label, summary, details = '') => {
  if (ok) passed++
  else failed++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}: ${summary}`)
  if (details) console.log(details.replace(/^/gm, '     '))
}

const skip = systemdSkipReason()
const services = runtimes.map(describeRuntime).join(', ')
if (skip) console.log(`runtime matrix: skipped: ${skip}`)
else console.log(`runtime matrix: tap on Node ${process.version}, services on ${services}`)
// The tap runner runs on this node (native addons are built for it): its folder goes first on PATH.
const runnerPath = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`
for (const runtime of skip ? [] : runtimes) {
  let fetched
  try {
    fetched = ensureRuntime(runtime)
  } catch (error) {
    report(false, `${runtime.name} ${runtime.spec}`, 'could not fetch the runtime', String(error?.message ?? error))
    continue
  }
  for (const suite of SUITES) {
    const label = `${runtime.name} (${fetched.version}) × ${suite.name}`
    const begun = Date.now()
    // Coverage comes from the package suites; here it would only cost time.
    const tapArgs = ['exec', 'tap', '--reporter=tap', '--filter-quietly', '--disable-coverage', ...suite.args]
    const run = spawnSync('pnpm', tapArgs, {
      cwd: join(root, suite.dir),
      env: { ...process.env, PATH: runnerPath, SDNOTIFY_SERVICE_RUNTIME: fetched.binary },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    })
    const output = `${run.stdout}${run.stderr}`
    // tap's last line: # { total: N, pass: N, fail: N, skip: N, todo: N }
    const summary = [...output.matchAll(/^# \{ total: \d+(.*)\}$/gm)].pop()?.[1] ?? ''
    const count = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary)?.[1] ?? 0)
    const ok = run.status === 0 && count('pass') > 0 && count('fail') === 0
    // What was skipped and why (filtered-out tests are quiet): "[not ]ok N - title # SKIP reason".
    const skipped = output.matchAll(/^\s*(?:not )?ok \d+ - (.*?) # SKIP (.+)$/gm)
    const skips = [...skipped].map((m) => `skipped: ${m[1]}: ${m[2]}`)
    const failures = [...output.matchAll(/^\s*not ok \d+ - (?!.* # (?:SKIP|TODO)).*$/gm)].map((m) => m[0].trim())
    const details = ok ? skips : [...failures, ...(summary ? [] : [output.slice(-3000)])]
    const counts = `${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped`
    report(ok, label, `${counts} (${seconds(begun)})`, details.join('\n'))
  }
}
console.log(`runtime matrix: wall time ${seconds(started)}`)
console.log(`runtime matrix: ${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
