// The harness's public face: the private systemd manager (manager.ts) and the helpers beside it. Modules of the
// harness import what they need from manager.ts, never from here, so the imports run one way.
export * from './manager.js'
export { fakeManager, type FakeManager, type Received } from './fake-manager.js'
export { readEvents, waitForEvent, waitForEvents, type ServiceEvent } from './events.js'
export { assertStartsListening, canConnect, testPort, type Asserts, type StartingManager } from './net.js'
export { startLoad, type Load, type LoadOptions, type LoadResult } from './load.js'
export { crashOrWedge, restartableApp, restartsUnderLoad, spawnService } from './restarts.js'
export type { RestartableApp, ServiceProcess } from './restarts.js'
export { Journald, journaldSkipReason, startJournald, type JournalEntry, type JournaldOptions } from './journald.js'
export { adapterContract, fixtureEvents, selfSignedCertificate } from './contract.js'
export type { ContractOptions, ContractProtocol, ContractTest, FixtureEvent } from './contract.js'
