// The adapter contract (packages/harness/src/contract.ts) against fixtures/contract-app.mjs. Starts systemd
// managers: run under the shared lock.
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { adapterContract } from '@sdnotify/systemd-harness'

adapterContract('express', fileURLToPath(new URL('../fixtures/contract-app.mjs', import.meta.url)), { t })
