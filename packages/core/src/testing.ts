// @sdnotify/core/testing: a notify socket for your own tests (see README "Test kit").
export { fakeManager, parseNotification } from './testing/fake-manager.js'
export type {
  Datagram,
  FakeManager,
  FakeManagerOptions,
  ReceivedNotification,
  NotificationMatch,
  WaitForOptions,
  WatchdogViolation,
} from './testing/fake-manager.js'
