// JournalLogger against a real systemd-journald (harness startJournald, private mount namespace): run under the
// systemd lock. The Nest side runs in a plain `node` child (fixtures/journal-logger-app.mjs).
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { journaldSkipReason, startJournald } from '@sdnotify/systemd-harness'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const app = fileURLToPath(new URL('../fixtures/journal-logger-app.mjs', import.meta.url))

interface AppRun {
  stdout: string
  stderr: string
  report: Record<string, unknown>
}

function runApp(env: Record<string, string>): Promise<AppRun> {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env }
  delete childEnv.JOURNAL_STREAM
  return new Promise((resolve, reject) => {
    // Through env -u: tap re-adds its hooks (NODE_OPTIONS) to children.
    const args = ['-u', 'NODE_OPTIONS', process.execPath, app]
    execFile('/usr/bin/env', args, { env: childEnv, cwd: pkg, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`${error.message}\n${stderr}`))
      const last = stdout.trim().split('\n').pop() as string
      resolve({ stdout, stderr, report: JSON.parse(last) })
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
    [['user created', '6'], ['quota nearly used', '4'], ['query failed', '3'], ['{"id":7}', '7']],
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
