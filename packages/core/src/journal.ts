// @sdnotify/core/journal: logs journald understands (see README "Journal").
export { encodeJournalEntry, fieldNameProblem, MAX_FIELD_NAME, toFieldName } from './journal/fields.js'
export type { JournalFields, JournalValue } from './journal/fields.js'
export { JOURNAL_SOCKET } from './journal/native.js'
export { levelPriority } from './journal/pino.js'
export { sendJournal } from './journal/send.js'
export type { SendJournalOptions } from './journal/send.js'
export { journalStream, stdioIsJournal } from './journal/stream.js'
export type { JournalStream, JournalStreamCounters, JournalStreamOptions, JournalTarget } from './journal/stream.js'
