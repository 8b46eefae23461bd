// Leak check: descriptors (/proc/self/fd) and heap (after full garbage collections) of a process that made
// 100,000 sends and 4,000 failed sends and barriers. It runs in a child (leaks-child.mjs) started with
// --expose-gc, against the built bundle: run `pnpm run build` after changing src.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const child = fileURLToPath(new URL('./leaks-child.mjs', import.meta.url))
const dist = fileURLToPath(new URL('../dist/esm/index.js', import.meta.url))
/** Heap after GC moves by a few hundred KiB between identical runs; a leak of 11 bytes per send exceeds this. */
const HEAP_TOLERANCE = 1024 * 1024

interface Figures {
  fds: number
  heap: number
}
interface Report {
  start: Figures
  afterSends: Figures
  afterFailures: Figures
  sends: number
  failed: number
}

function runChild (): Promise<Report> {
  const env = { ...process.env }
  delete env.NODE_OPTIONS // tap's hooks would run in the child too
  return new Promise((resolve, reject) => {
    const options = { env, timeout: 60_000, encoding: 'utf8' as const }
    execFile(process.execPath, ['--expose-gc', child], options, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`))
      else resolve(JSON.parse(stdout) as Report)
    })
  })
}

const title = '100,000 sends, then 1,000 failed sends and barriers per transport: descriptors ±0, heap within 1 MiB'
t.test(title, async (t) => {
  t.ok(existsSync(dist), 'core is built (pnpm run build)')
  const { start, afterSends, afterFailures, sends, failed } = await runChild()
  t.equal(sends, 100_000, 'sends made (all resolved true)')
  t.equal(failed, 4_000, 'failed sends and barriers (koffi and unix-dgram, to a missing socket)')
  const kib = (bytes: number) => `${Math.round(bytes / 1024)} KiB`
  t.equal(afterSends.fds, start.fds, 'descriptors after 100,000 sends')
  t.equal(afterFailures.fds, start.fds, 'descriptors after the failures')
  const grown = afterSends.heap - start.heap
  t.ok(grown <= HEAP_TOLERANCE, `heap after 100,000 sends: ${kib(grown)} more`)
  const grownAfterFailures = afterFailures.heap - start.heap
  t.ok(grownAfterFailures <= HEAP_TOLERANCE, `heap after the failures: ${kib(grownAfterFailures)} more`)
})
