// JournalLogger against a real systemd-journald (harness startJournald, private mount namespace): run under the
// systemd lock. The Nest side runs in a plain `node` child (fixtures/journal-logger-app.mjs).
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { coverageEnv, journaldSkipReason, startJournald } from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const app = fileURLToPath(new URL('../fixtures/journal-logger-app.mjs', import.meta.url))
const levelsApp = fileURLToPath(new URL('../fixtures/journal-logger-levels.mjs', import.meta.url))

interface AppRun {
  stdout: string
  stderr: string
  report: Record<string, unknown>
}

function runApp (env: Record<string, string>, fixture = app): Promise<AppRun> {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...coverageEnv(), ...env }
  delete childEnv.JOURNAL_STREAM
  return new Promise((resolve, reject) => {
    // Through env -u: tap re-adds its hooks (NODE_OPTIONS) to children.
    const args = ['-u', 'NODE_OPTIONS', process.execPath, fixture]
    execFile('/usr/bin/env', args, { env: childEnv, cwd: pkg, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`${error.message}\n${stderr}`))
      const last = stdout.trim().split('\n').pop() as string
      resolve({ stdout, stderr, report: JSON.parse(last) as Record<string, unknown> })
    })
  })
}

t.test('outside the journal: Nest ConsoleLogger output, unchanged', async (t) => {
  const { stdout, stderr, report } = await runApp({})
  t.match(report, { target: 'stdout', fallback: true })
  t.match(stdout, /LOG \[UsersService\] user created/)
  t.match(stdout, /WARN \[UsersService\] quota nearly used/)
  t.match(stderr, /ERROR \[UsersService\] query failed\nError: db down/, 'errors on stderr, as ConsoleLogger does')
})

t.test('outside the journal: logLevels and setLogLevels() filter what reaches the fallback logger', async (t) => {
  const { stdout, stderr, report } = await runApp({}, levelsApp)
  t.match(report, { target: 'stdout', fallback: true })
  t.match(stdout, /VERBOSE \[Levels\] verbose line/)
  t.match(stdout, /LOG \[Levels\] with params/)
  t.notMatch(stdout, /debug line/, 'debug is not in logLevels')
  t.notMatch(stdout, /warn line/, 'setLogLevels([\'error\']) applies from then on')
  t.match(stderr, /FATAL \[Levels\] fatal line/)
  t.match(stderr, /ERROR \[Levels\] error line/)
  t.match(stderr, /FATAL \[Levels\] fatal line, above setLogLevels/, 'levels above the highest listed stay on (Nest)')
})

const skip = journaldSkipReason()
if (skip) t.comment(`skipping real-journald tests: ${skip}`)

t.test('on the journal: one entry per call, PRIORITY, NEST_CONTEXT and ERR_STACK as fields', { skip }, async (t) => {
  const journald = await startJournald()
  t.teardown(() => journald.stop())
  const ident = `nest${process.pid}`
  const { report } = await runApp({ SDN_TARGET: 'journal', SDN_SOCKET: journald.socket, SDN_IDENT: ident })
  t.match(report, { target: 'journal', fallback: false })
  const users = await journald.waitForEntries([`SYSLOG_IDENTIFIER=${ident}`, 'NEST_CONTEXT=UsersService'], 4)
  t.same(
    users.map((e) => [e.MESSAGE, e.PRIORITY]),
    [['user created', '6'], ['quota nearly used', '4'], ['query failed', '3'], ['{"id":7}', '7']]
  )
  t.equal(users[2]?.ERR_STACK, report.stack, 'the stack trace Nest passed, newlines included, as one field')
  const [thrown] = await journald.entries([`SYSLOG_IDENTIFIER=${ident}`, 'NEST_CONTEXT=Bootstrap'])
  t.match(thrown, { MESSAGE: 'thrown', PRIORITY: '3', ERR_TYPE: 'Error', ERR_MESSAGE: 'thrown' })
  t.match(thrown?.ERR_STACK, /^Error: thrown\n\s+at /)
  const nest = await journald.entries([`SYSLOG_IDENTIFIER=${ident}`, 'NEST_CONTEXT=NestFactory'])
  t.ok(nest.length > 0, "Nest's own start-up lines carry their context too")
  const warnings = await journald.entries([`SYSLOG_IDENTIFIER=${ident}`, '-p', 'warning'])
  t.same(warnings.map((e) => e.MESSAGE), ['quota nearly used', 'query failed', 'thrown'], 'journalctl -p warning')
})

t.test('on the journal: verbose and fatal priorities, level filters, values JSON cannot hold', { skip }, async (t) => {
  const journald = await startJournald()
  t.teardown(() => journald.stop())
  const ident = `nestlevels${process.pid}`
  const env = { SDN_TARGET: 'journal', SDN_SOCKET: journald.socket, SDN_IDENT: ident }
  const { report } = await runApp(env, levelsApp)
  t.match(report, { target: 'journal', fallback: false })
  const entries = await journald.waitForEntries([`SYSLOG_IDENTIFIER=${ident}`, 'NEST_CONTEXT=Levels'], 6)
  t.same(entries.map((e) => [e.MESSAGE, e.PRIORITY]), [
    ['verbose line', '7'],
    ['fatal line', '2'],
    ['[object Object]', '6'], // a cycle: String() of it, and no throw
    ['with params', '6'],
    ['error line', '3'],
    ['fatal line, above setLogLevels', '2'],
  ], 'debug (not in logLevels) and warn (after setLogLevels([\'error\'])) left out')
  t.equal(entries[3]?.NEST_PARAMS, JSON.stringify(['10', '{"a":1}']), 'a bigint as its String(), an object as JSON')
})
