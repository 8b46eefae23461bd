// The test command (`pnpm test` / `npm test`): tsc over every package, every package's tap suite, one
// package at a time, then one summary line. The real-systemd tests need root; elsewhere they skip and say why.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
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
].filter((dir) => existsSync(join(dir, 'package.json')) && JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts?.test)

const totals = { pass: 0, fail: 0, skip: 0, todo: 0 }
let failed = false
// tap runs TypeScript without checking types: tsc does, sources and tests, strict.
console.log('\n=== typecheck (tsc --noEmit, every package)')
const typecheck = spawnSync('pnpm', ['-r', 'run', 'typecheck'], { cwd: root, stdio: 'inherit' })
if (typecheck.status !== 0) {
  console.error('test: typecheck failed')
  failed = true
}
// A script of ours that ends with "<label>: N passed, N failed": each of its checks counts as one test.
const counted = (heading, script, label) => {
  console.log(`\n=== ${heading}`)
  const run = spawnSync(process.execPath, [join(root, script)], {
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
// Are The Types Wrong and publint on each published package's tarball.
counted('package checks (attw, publint on the packed tarballs)', 'scripts/check-packages.mjs', 'package checks')
for (const dir of packages) {
  // After the package suites, before reliability: the real-systemd suites with services on Node 22, 24, 26 and Bun.
  if (dir === join(root, 'reliability')) {
    counted('runtime matrix (services on Node 22, 24, 26 and Bun)', 'scripts/runtime-matrix.mjs', 'runtime matrix')
  }
  const name = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name
  console.log(`\n=== ${name}`)
  const run = spawnSync('pnpm', ['run', '--silent', 'test'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
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
}
console.log(`\ntests: ${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped`)
process.exit(failed ? 1 : 0)
