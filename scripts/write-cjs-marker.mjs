// Marks a CommonJS build folder inside a "type": "module" package, so Node loads its .js as CJS.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
const dir = process.argv[2]
if (!dir) throw new Error('usage: write-cjs-marker.mjs DIR')
writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'commonjs' }) + '\n')
