export { createNotifier } from './notifier.js'
export type { Description, Notifier, NotifierOptions } from './notifier.js'
export { encodeNotification, MAX_MESSAGE_BYTES, monotonicUsec, toAssignments } from './protocol.js'
export type { Notification, NotifyAccess } from './protocol.js'
export { parseNotifySocket, SUN_PATH_BYTES } from './address.js'
export type { NotifyAddress, UnixAddress, VsockAddress } from './address.js'
export { inheritedFds, listenFds, notifyFd, NOTIFY_FD_NAME, SD_LISTEN_FDS_START } from './listen-fds.js'
export type { ListenFd, ListenFdsOptions } from './listen-fds.js'
export { Watchdog, watchdogSettings } from './watchdog.js'
export type { WatchdogOptions, WatchdogSettings } from './watchdog.js'
export { SdNotifyError } from './errors.js'
export type { SdNotifyErrorCode } from './errors.js'
export type { TransportName, TransportCapabilities } from './transports/transport.js'
export type { TransportPlan } from './select-transport.js'
export {
  errnoNumber,
  formatAddress,
  onShutdownSignal,
  reportListenError,
  validateShutdownSignals,
} from './lifecycle.js'
export type { ShutdownSignalOptions } from './lifecycle.js'
export { trackHttpConnections } from './http-drain.js'
export type { HttpDrain } from './http-drain.js'
export { errorText, statusText } from './status-text.js'
export {
  ADAPTER_OPTION_NAMES,
  onReloadSignal,
  passedListenSocket,
  resolveStatus,
  runReload,
  storeListeningSocket,
  validateAdapterOptions,
  validateWatchdogOptions,
} from './adapter.js'
export type { AdapterOptions, PassedListenSocket, ReadyInfo, StoppingInfo } from './adapter.js'
export {
  addressMismatch,
  DEFAULT_SOCKET_NAME,
  fdStoreLimit,
  fdStoreName,
  findPassedSocket,
  formatSocketAddress,
  removeStoredSocket,
  serverFd,
  storeServerSocket,
  systemdVersion,
} from './fd-store.js'
export type { FindPassedSocketOptions, ListenConfig, PassedSocket } from './fd-store.js'
export type { SocketAddress } from './socket-address.js'
/** @internal For core's own entry points (`@sdnotify/core/journal` shares libc with the transports): not an API. */
export {
  loadLibc as internalLoadLibc,
  rightsControlMessage as internalRightsControlMessage,
} from './transports/libc.js'
