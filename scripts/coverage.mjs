// Coverage of a package's own src/ after its tap suite: `node scripts/coverage.mjs packages/core …` (the test command
// runs it after each package's suite). It reads the package's .tap/coverage: tap's files for the test processes and
// the children its hooks reach (src/ only: scripts/coverage-map.mjs), Node's NODE_V8_COVERAGE files from children run
// without those hooks (the harness's coverageEnv()) and from the services under the harness's systemd managers. Code
// run from a built file (core's bundle, the adapters' dist/) counts for the src/ file its source map names. A src/
// file that no process loaded counts too, with every line uncovered. Prints a table of the files not fully covered,
// one line per package, and "coverage: N passed, N failed"; exits 1 when a package is below its thresholds (only as
// root: otherwise the real-systemd tests were skipped, and the numbers are printed without failing).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Report } from 'c8'

// Percent of lines and of branches, per package: core, then every adapter.
const thresholds = { '@sdnotify/core': { lines: 95, branches: 90 } }
const adapter = { lines: 90, branches: 85 }
const enforced = process.getuid?.() === 0

const sourceFile = /\.[cm]?[jt]s$/
const listSources = (dir) =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => sourceFile.test(name) && !name.endsWith('.d.ts'))
    .map((name) => join(dir, name))

/**
 * Copies the scripts of the package's coverage files that are src/ files or map to one into `into` (the rest would
 * only cost time: tap's report does the same filtering), and adds an empty coverage for every src/ file that none
 * of them covers. Returns how many coverage files there were and the src/ files never loaded.
 */
function gather (dir, into) {
  const src = join(dir, 'src') + '/'
  const covered = new Set()
  const folder = join(dir, '.tap/coverage')
  const files = existsSync(folder) ? readdirSync(folder).filter((name) => name.endsWith('.json')) : []
  for (const file of files) {
    let data
    try {
      data = JSON.parse(readFileSync(join(folder, file), 'utf8'))
    } catch {
      continue // cut short: its process died while writing it
    }
    if (!Array.isArray(data?.result)) continue
    const maps = data['source-map-cache'] ?? {}
    const kept = data.result.filter(({ url }) => {
      if (!url.startsWith('file:')) return false
      // Node and tap store a map's sources as absolute URLs; a relative one is relative to the script.
      const sources = (maps[url]?.data?.sources ?? []).map((source) => fileURLToPath(new URL(source, url)))
      const ours = [fileURLToPath(url), ...sources].filter((path) => path.startsWith(src))
      for (const path of ours) covered.add(path)
      return ours.length > 0
    })
    if (kept.length === 0) continue
    const keptMaps = Object.fromEntries(kept.filter(({ url }) => maps[url]).map(({ url }) => [url, maps[url]]))
    writeFileSync(join(into, file), JSON.stringify({ result: kept, 'source-map-cache': keptMaps }))
  }
  // What c8's --all does, but for the src/ files rather than the built files the coverage names.
  const unloaded = listSources(join(dir, 'src')).filter((path) => !covered.has(path))
  const empty = unloaded.map((path) => ({
    scriptId: '0',
    url: pathToFileURL(path).href,
    functions: [{
      functionName: '(empty-report)', // c8's own placeholder (its --all): every line uncovered
      isBlockCoverage: true,
      ranges: [{ startOffset: 0, endOffset: statSync(path).size, count: 0 }],
    }],
  }))
  if (empty.length > 0) writeFileSync(join(into, 'unloaded.json'), JSON.stringify({ result: empty }))
  return { files: files.length, unloaded }
}

const pct = (value) => (typeof value === 'number' ? value : 0)
let passed = 0
let failed = 0
// Resolved before the loop: it changes the working folder (c8 reports relative to it).
for (const dir of process.argv.slice(2).map((arg) => resolve(arg))) {
  const { name } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  const want = thresholds[name] ?? adapter
  const temp = mkdtempSync(join(tmpdir(), 'sdnotify-coverage-'))
  try {
    const { files, unloaded } = gather(dir, temp)
    if (files === 0) {
      console.log(`FAIL coverage ${name}: no coverage data in ${relative(process.cwd(), join(dir, '.tap/coverage'))}`)
      failed++
      continue
    }
    const reportsDirectory = join(dir, '.tap/report')
    // c8 matches include/exclude against paths relative to the working directory.
    process.chdir(dir)
    const report = new Report({
      include: ['src/**'],
      exclude: ['**/*.d.ts'],
      excludeAfterRemap: true, // filter on the src/ paths the source maps lead to, not on dist/
      excludeNodeModules: true,
      reporter: ['text', 'json-summary'],
      reporterOptions: { text: { maxCols: 0 } }, // the uncovered lines in full
      reportsDirectory,
      tempDirectory: temp,
      resolve: '',
      skipFull: true,
    })
    await report.run()
    const { total } = JSON.parse(readFileSync(join(reportsDirectory, 'coverage-summary.json'), 'utf8'))
    const lines = pct(total.lines.pct)
    const branches = pct(total.branches.pct)
    const ok = lines >= want.lines && branches >= want.branches
    const verdict = ok || !enforced ? 'ok  ' : 'FAIL'
    const note = enforced ? '' : ' (not enforced: not root, the real-systemd tests were skipped)'
    console.log(
      `${verdict} coverage ${name}: lines ${lines.toFixed(1)} % (threshold ${want.lines}), ` +
        `branches ${branches.toFixed(1)} % (${want.branches}), ${files} coverage files${note}`
    )
    for (const path of unloaded) console.log(`     never loaded by any test: ${relative(dir, path)}`)
    if (ok || !enforced) passed++
    else failed++
  } finally {
    rmSync(temp, { recursive: true, force: true })
  }
}
console.log(`coverage: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
