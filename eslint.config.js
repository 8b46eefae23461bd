// `pnpm lint`, also a step of the test command (scripts/test.mjs).
// neostandard: the style of the Fastify ecosystem (no semicolons, 2 spaces, single quotes), TypeScript included.
// typescript-eslint's type-checked rules on the TypeScript files, each through its own package's tsconfig.json
// (projectService); JavaScript files (scripts, benchmarks, fixtures, examples) get the rules that need no types.
import { defineConfig } from 'eslint/config'
import neostandard from 'neostandard'
import tseslint from 'typescript-eslint'

export default defineConfig([
  {
    ignores: ['**/dist/**', '**/node_modules/**', '**/.tap/**', '**/coverage/**', '.bench-quick/**', '.soak-quick/**'],
  },
  ...neostandard({ ts: true, noJsx: true }),
  {
    name: 'sdnotify/style',
    rules: {
      '@stylistic/max-len': ['error', { code: 120, ignoreUrls: true }],
      'no-nested-ternary': 'error',
      // `void promise` marks a promise whose outcome is handled elsewhere (no-floating-promises' own convention).
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
  {
    name: 'sdnotify/type-checked',
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        project: null,
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // tap orders subtests itself and reports their failures: `t.test()`'s promise needs no await.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', name: 'test', package: '@tapjs/test' }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/require-await': 'error',
      // Passing on a caught value unchanged (`catch (error) { return Promise.reject(error) }`), as `throw error` may.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
    },
  },
])
