// sendJournal(): one entry, validated, sent now (or after journald makes room), resolved once journald has it.
import { SdNotifyError } from '../index.js'
import { encodeJournalEntry, type JournalFields } from './fields.js'
import { isBusy, JOURNAL_SOCKET, journalSendFailed, JournalSocket, type PendingEntry } from './native.js'

export interface SendJournalOptions {
  /** journald's native socket. Default `/run/systemd/journal/socket`. */
  socket?: string
  /** How long to wait while journald's queue is full. Default 5000 ms. */
  timeoutMs?: number
}

const sockets = new Map<string, JournalSocket>()

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => (ms === 0 ? setImmediate(resolve) : setTimeout(resolve, ms)))
}

/**
 * Sends one journal entry (sd_journal_send(3)): `{ MESSAGE: 'disk full', PRIORITY: 3, DISK: '/dev/sda' }`. Field
 * names must follow journald's rules (A-Z, 0-9 and `_`, not starting with `_` or a digit, at most 64
 * characters); values may hold newlines or binary data (Buffers). An entry too large for a datagram goes through a
 * sealed memfd, as libsystemd does. Rejects with ERR_SDNOTIFY_INVALID_FIELD for bad input, and
 * ERR_SDNOTIFY_SEND_FAILED when journald does not take it (ENOENT: no journald here): unlike libsystemd, which
 * ignores a missing journal, nothing is dropped silently.
 */
export async function sendJournal (fields: JournalFields, options: SendJournalOptions = {}): Promise<void> {
  const entry: PendingEntry = { data: encodeJournalEntry(fields) }
  const path = options.socket ?? JOURNAL_SOCKET
  let socket = sockets.get(path)
  if (!socket) {
    socket = new JournalSocket(path)
    sockets.set(path, socket)
  }
  await socket.load()
  const timeoutMs = options.timeoutMs ?? 5000
  const deadline = performance.now() + timeoutMs // monotonic: a wall-clock step must not cut the wait
  try {
    for (let tries = 0; ; tries++) {
      const errno = socket.trySend(entry)
      if (errno === undefined) return
      if (!isBusy(errno)) throw journalSendFailed(errno, path)
      if (performance.now() >= deadline) {
        const message = `sdnotify: journal: ${path} still full after ${timeoutMs} ms (${errno})`
        throw new SdNotifyError('ERR_SDNOTIFY_TIMEOUT', message, {
          transport: 'koffi',
          errno,
          syscall: 'sendto',
        })
      }
      await delay(tries < 3 ? 0 : Math.min(20, 2 ** (tries - 3)))
    }
  } finally {
    socket.release(entry)
  }
}
