// Checks every published package as npm would ship it: `pnpm pack` (workspace:* becomes a version), then
// Are The Types Wrong (attw) and publint on the tarball, both offline, and a check that every source and declaration
// map in it comes with the files it names. One line per package and tool, then
// "package checks: N passed, N failed"; exit status 1 when any check failed. Needs the packages built.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const bin = (name) => join(root, 'node_modules/.bin', name)
const run = (command, args, cwd = root) =>
  spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } })

const packages = readdirSync(join(root, 'packages'))
  .map((name) => join(root, 'packages', name))
  .filter((dir) => existsSync(join(dir, 'package.json')))
  .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => !pkg.private)

const out = mkdtempSync(join(tmpdir(), 'sdnotify-packs-'))
let passed = 0
let failed = 0
const report = (name, tool, ok, summary, details = '') => {
  if (ok) passed++
  else failed++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} ${tool}: ${summary}`)
  if (!ok && details) console.log(details.replace(/^/gm, '     '))
}

/**
 * Declaration and source maps ship with what they point to: in the unpacked tarball, every `sourceMappingURL` of a
 * .js or .d.ts file names a map that is there, and every `sources` entry of every map is a file that is there.
 */
function checkSourceMaps (tarball, into) {
  mkdirSync(into, { recursive: true })
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', into], { encoding: 'utf8' })
  if (untar.status !== 0) return { summary: 'could not unpack', problems: [untar.stderr] }
  const top = join(into, 'package')
  const files = readdirSync(top, { recursive: true, encoding: 'utf8' })
  const problems = []
  const inside = (path) => !relative(top, path).startsWith('..') && existsSync(path)
  let mapCount = 0
  for (const name of files) {
    const path = join(top, name)
    if (/\.(c|m)?js$|\.d\.(c|m)?ts$/.test(name)) {
      const url = /^\/\/# sourceMappingURL=(\S+)\s*$/m.exec(readFileSync(path, 'utf8'))?.[1]
      if (url && !url.startsWith('data:') && !inside(resolve(dirname(path), url))) {
        problems.push(`${name}: sourceMappingURL ${url} is not in the package`)
      }
    }
    if (!name.endsWith('.map')) continue
    mapCount++
    const map = JSON.parse(readFileSync(path, 'utf8'))
    for (const source of map.sources ?? []) {
      if (!inside(resolve(dirname(path), map.sourceRoot ?? '', source))) {
        problems.push(`${name}: source ${source} is not in the package`)
      }
    }
  }
  const summary = problems.length === 0
    ? `${mapCount} maps, every source and map they name is in the package`
    : `${problems.length} dangling`
  return { summary, problems }
}

try {
  for (const { dir, pkg } of packages) {
    const dest = join(out, pkg.name.replace(/[@/]/g, '_'))
    const packed = run('pnpm', ['pack', '--pack-destination', dest], dir)
    const tarball = packed.status === 0 ? readdirSync(dest).find((file) => file.endsWith('.tgz')) : undefined
    if (!tarball) {
      report(pkg.name, 'pack', false, 'pnpm pack failed', `${packed.stdout}${packed.stderr}`)
      continue
    }
    const file = join(dest, tarball)

    // An ES-module-only package (no "require" condition) is loaded by require() through require(esm) (Node >= 20.19,
    // the engines range): attw 0.18's TypeScript 5.6 still calls that "ESM (dynamic import only)" in the node16-CJS
    // view (rule cjs-resolves-to-esm; TypeScript >= 5.8 with module node20/nodenext types require(esm) too). Only that
    // rule is ignored for such packages, not a whole resolution mode (--profile esm-only would also drop node10).
    const esmOnly = pkg.type === 'module' && !JSON.stringify(pkg.exports ?? {}).includes('"require"')
    const attwArgs = [file, '--no-definitely-typed', '--format', 'ascii', '--no-emoji', '--no-color']
    if (esmOnly) attwArgs.push('--ignore-rules', 'cjs-resolves-to-esm')
    const attw = run(bin('attw'), attwArgs)
    const entrypoints = [...attw.stdout.matchAll(/^"([^"]+)"$/gm)].map((m) => m[1])
    const checked = entrypoints.join(', ') || 'no entry point'
    const ignored = esmOnly ? ' (ESM only: cjs-resolves-to-esm ignored)' : ''
    const attwSummary = `${attw.status === 0 ? 'no problems' : 'problems'} in ${checked}${ignored}`
    report(pkg.name, 'attw', attw.status === 0, attwSummary, `${attw.stdout}${attw.stderr}`)

    // --strict: warnings fail too; suggestions are printed but do not fail.
    const publint = run(bin('publint'), ['run', file, '--strict'])
    // eslint-disable-next-line no-control-regex -- ESC starts the colour codes it strips
    const text = `${publint.stdout}${publint.stderr}`.replace(/\x1b\[[0-9;]*m/g, '') // it colours even when piped
    // Its report: "Errors:", "Warnings:", "Suggestions:" headings, each followed by numbered messages.
    const messages = []
    let heading = ''
    for (const line of text.split('\n')) {
      const title = /^(Errors|Warnings|Suggestions):$/.exec(line)
      if (title) heading = title[1].toLowerCase().replace(/s$/, '')
      const item = /^\d+\. (.*)$/.exec(line)
      if (item) messages.push(`${heading}: ${item[1]}`)
    }
    const publintSummary = /All good!/.test(text) ? 'all good' : messages.join(' | ') || 'see below'
    report(pkg.name, 'publint', publint.status === 0, publintSummary, text)

    const maps = checkSourceMaps(file, join(dest, 'unpacked'))
    report(pkg.name, 'source maps', maps.problems.length === 0, maps.summary, maps.problems.join('\n'))
  }
} finally {
  rmSync(out, { recursive: true, force: true })
}
console.log(`package checks: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
