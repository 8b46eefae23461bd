// Bundles src/index.ts into dist/esm (ES modules, with code reached only through dynamic import() split
// into lazily loaded chunks). Node's ES module loader costs about a millisecond per file: one file (plus
// chunks loaded on demand) keeps `import` cheap. Type declarations come from tsc.
// There is no CommonJS build on purpose: require('@sdnotify/core') loads this same ES module (require(esm),
// Node >= 20.19, and Bun), so a process has one copy of core's state (environment snapshot, warning flags,
// transport cache, the SdNotifyError class) however it is loaded. Two bundles would be two module instances.
import { chmodSync } from 'node:fs'
import { resolve } from 'node:path'
import { build } from 'esbuild'

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  packages: 'external', // dependencies (koffi, unix-dgram…) stay imports
  sourcemap: true,
  minify: true, // V8 parses less: part of keeping import under 5 ms (source maps keep stack traces readable)
  keepNames: true, // class and function names survive minification (stack traces, constructor.name)
  logLevel: 'warning',
}
await build({
  ...common,
  entryPoints: ['src/index.ts'],
  format: 'esm',
  splitting: true,
  outdir: 'dist/esm',
  chunkNames: 'chunks/[name]-[hash]',
})

// The other entry points: `@sdnotify/core/testing` (the test kit), `@sdnotify/core/journal` and the `sdnotify`
// command. They reach core only through src/index.ts, which stays an import of the built ./index.js: the very
// module the application loads, so one SdNotifyError class, one environment snapshot and one libc binding (a
// shared esbuild chunk would do that too, but would turn index.js into two files, and cost every import of core a
// millisecond).
const indexTs = resolve('src/index.ts')
const sameIndex = {
  name: 'core-index-external',
  setup (b) {
    b.onResolve({ filter: /index\.js$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'))
      return target === indexTs ? { path: './index.js', external: true } : undefined
    })
  },
}
const extra = await build({
  ...common,
  entryPoints: { testing: 'src/testing.ts', cli: 'src/cli/main.ts', journal: 'src/journal.ts' },
  format: 'esm',
  outdir: 'dist/esm',
  plugins: [sameIndex],
  metafile: true,
})
// Guard: a module of core's state bundled a second time into these files would be a second instance.
for (const [file, output] of Object.entries(extra.metafile.outputs)) {
  const ours = /^src\/(testing|cli|journal)[./]/
  const copied = Object.keys(output.inputs).filter((input) => input.startsWith('src/') && !ours.test(input))
  if (copied.length > 0) {
    throw new Error(`bundle: ${file} bundles a copy of ${copied.join(', ')}: import it from index.js instead`)
  }
}
chmodSync('dist/esm/cli.js', 0o755)
