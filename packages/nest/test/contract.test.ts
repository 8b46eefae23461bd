// The adapter contract shared by the three adapters (packages/harness/src/contract.ts), run against this
// package's fixtures/contract-app.mjs. It starts systemd managers: run it under the shared lock.
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { adapterContract } from '@sdnotify/systemd-harness'

adapterContract('nest', fileURLToPath(new URL('../fixtures/contract-app.mjs', import.meta.url)), { t })
