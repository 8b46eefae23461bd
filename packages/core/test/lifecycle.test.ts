import t from 'tap'
import { fakeManager } from '@sdnotify/systemd-harness'
import { createNotifier, reportListenError } from '../src/index.js'

const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:80'), { code: 'EADDRINUSE' })
const expected = 'STATUS=Failed to listen: listen EADDRINUSE: address already in use 127.0.0.1:80\nERRNO=98'

t.test('reportListenError: synchronous once the transport is loaded', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await n.prepare()
  const report = reportListenError(n, inUse)
  t.same((await fake.waitFor(1)).map((m) => m.text), [expected])
  await report
  await n.close()
})

t.test('reportListenError: before the transport is loaded, sent as soon as it is', async (t) => {
  const fake = fakeManager()
  t.teardown(() => fake.close())
  const n = createNotifier({ env: { NOTIFY_SOCKET: fake.address } })
  await reportListenError(n, inUse)
  t.same((await fake.waitFor(1)).map((m) => m.text), [expected])
  await n.close()
})

t.test('reportListenError: rejects when it cannot be sent', async (t) => {
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/nonexistent/notify' } })
  await t.rejects(reportListenError(n, inUse), { name: 'SdNotifyError', errno: 'ENOENT' })
  await n.close()
})
