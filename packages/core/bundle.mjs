// Bundles a package's src/index.ts into dist/esm (ES modules, with code reached only through dynamic
// import() split into lazily loaded chunks) and dist/cjs/index.js (CommonJS). Node's ES module loader
// costs about a millisecond per file: one file (plus chunks loaded on demand) keeps `import` cheap.
// Type declarations come from tsc.
import { build } from 'esbuild'

const common = {
  entryPoints: ['src/index.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  packages: 'external', // dependencies (koffi, unix-dgram…) stay imports
  sourcemap: true,
  minify: true, // V8 parses less: part of keeping import under 5 ms (source maps keep stack traces readable)
  keepNames: true, // class and function names survive minification (stack traces, constructor.name)
  logLevel: 'warning',
}
await build({ ...common, format: 'esm', splitting: true, outdir: 'dist/esm', chunkNames: 'chunks/[name]-[hash]' })
await build({ ...common, format: 'cjs', outfile: 'dist/cjs/index.js' })
