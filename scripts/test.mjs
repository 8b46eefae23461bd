// The test command (`pnpm test` / `npm test`): tsc over every package, every package's tap suite, one
// package at a time, then one summary line. The real-systemd tests need root; elsewhere they skip and say why.
// scripts/setup.sh runs it on the primary Node (24) with that Node's bin first on PATH, so every node, pnpm and tap
// started from here runs on it too; the runtime matrix puts the services on the other runtimes.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { describeRuntime, MATRIX, PRIMARY } from './runtimes.mjs'

const root = new URL('..', import.meta.url).pathname
const matrix = MATRIX.map(describeRuntime).join(', ')
const primary = describeRuntime(PRIMARY)
const onPrimary = `Node ${process.version.slice(1)}` === primary
const which = onPrimary ? 'primary' : `not the primary ${primary}, which \`npm test\` sets up`
console.log(`test: Node ${process.version} (${which}), matrix: ${matrix}`)
if (process.getuid?.() === 0) {
  // systemd 257 comes from a Debian trixie root (cached outside the repository).
  const built = spawnSync('bash', [join(root, 'scripts/debian-root.sh')], { stdio: 'inherit' })
  if (built.status !== 0) {
    console.error('test: could not build the Debian trixie root for the systemd 257 tests')
    if (process.env.CI) process.exit(1)
  }
} else {
  console.log('test: not root: the real-systemd tests will be skipped (they need root for cgroups and namespaces)')
}

// Last, alone on the machine: reliability/ (`pnpm soak --quick`, fault injection with CPU hogs and a frozen manager)
// prints its expectations as TAP with tap's summary line.
const packages = [
  ...readdirSync(join(root, 'packages')).map((name) => join(root, 'packages', name)),
  join(root, 'reliability'),
].filter((dir) =>
  existsSync(join(dir, 'package.json')) && JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts?.test)

const totals = { pass: 0, fail: 0, skip: 0, todo: 0 }
let failed = false
// tap runs TypeScript without checking types: tsc does, sources and tests, strict.
console.log('\n=== typecheck (tsc --noEmit, every package)')
const typecheck = spawnSync('pnpm', ['-r', 'run', 'typecheck'], { cwd: root, stdio: 'inherit' })
if (typecheck.status !== 0) {
  console.error('test: typecheck failed')
  failed = true
}
// ESLint (eslint.config.js): neostandard's style, typescript-eslint's type-checked rules. Any problem fails.
console.log('\n=== lint (eslint, type-checked)')
const lint = spawnSync('pnpm', ['run', '--silent', 'lint'],
  { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
process.stdout.write(lint.stdout)
// eslint's summary line: "✖ N problems (N errors, N warnings)"; it prints nothing when there are none.
const problems = /(\d+) problems? \(/.exec(lint.stdout)?.[1] ?? (lint.status === 0 ? '0' : 'unknown')
console.log(`lint: ${problems} problems`)
if (lint.status !== 0) {
  console.error('test: lint failed')
  failed = true
}
// A script of ours that ends with "<label>: N passed, N failed": each of its checks counts as one test.
const counted = (heading, script, label, args = []) => {
  console.log(`\n=== ${heading}`)
  const run = spawnSync(process.execPath, [join(root, script), ...args], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  process.stdout.write(run.stdout)
  const count = new RegExp(`^${label}: (\\d+) passed, (\\d+) failed$`, 'm').exec(run.stdout)
  if (count) {
    totals.pass += Number(count[1])
    totals.fail += Number(count[2])
  }
  if (run.status !== 0 || !count) failed = true
}
// Are The Types Wrong, publint and a source-map check on each published package's tarball.
counted('package checks (attw, publint, source maps on the packed tarballs)', 'scripts/check-packages.mjs',
  'package checks')
for (const dir of packages) {
  // After the package suites, before reliability: the real-systemd suites with services on the other runtimes.
  if (dir === join(root, 'reliability')) {
    counted(`runtime matrix (services on ${matrix})`, 'scripts/runtime-matrix.mjs', 'runtime matrix')
  }
  const name = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name
  console.log(`\n=== ${name}`)
  const run = spawnSync('pnpm', ['run', '--silent', 'test'],
    { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  process.stdout.write(run.stdout)
  // tap's last line: # { total: N, pass: N, fail: N, skip: N, todo: N }
  const summary = [...run.stdout.matchAll(/^# \{ total: \d+(.*)\}$/gm)].pop()
  if (summary) {
    for (const key of Object.keys(totals)) {
      const match = new RegExp(`${key}: (\\d+)`).exec(summary[1])
      if (match) totals[key] += Number(match[1])
    }
  }
  if (run.status !== 0 || !summary) failed = true
  // Right after the suite (the runtime matrix runs tap again, which clears .tap/coverage): lines and branches of
  // the package's src/, from the tests, their children and the services; below its thresholds fails.
  if (existsSync(join(dir, '.taprc'))) counted(`coverage ${name}`, 'scripts/coverage.mjs', 'coverage', [dir])
}
console.log(`\ntests: ${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped`)
process.exit(failed ? 1 : 0)
