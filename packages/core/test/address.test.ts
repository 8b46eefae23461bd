import t from 'tap'
import { parseNotifySocket } from '../src/address.js'

t.test('absolute path', (t) => {
  const a = parseNotifySocket('/run/systemd/notify')
  t.match(a, { family: 'unix', path: '/run/systemd/notify', abstract: false })
  if (a.family !== 'unix') throw new Error('unreachable')
  t.equal(a.sockaddr.length, 2 + 19 + 1, 'family, path, NUL')
  t.equal(a.sockaddr.readUInt16LE(0), 1, 'AF_UNIX')
  t.equal(a.sockaddr.subarray(2, 21).toString(), '/run/systemd/notify')
  t.equal(a.sockaddr[21], 0)
  t.end()
})

t.test('abstract name', (t) => {
  const a = parseNotifySocket('@/org/example/notify')
  if (a.family !== 'unix') throw new Error('unreachable')
  t.equal(a.abstract, true)
  t.equal(a.sockaddr[2], 0, 'the name starts with a NUL byte')
  t.equal(a.sockaddr.subarray(3).toString(), '/org/example/notify', 'no terminating NUL: addrlen covers the name')
  t.end()
})

t.test('vsock forms', (t) => {
  t.same(parseNotifySocket('vsock:2:1234'), { family: 'vsock', cid: 2, port: 1234, socketType: undefined })
  t.same(parseNotifySocket('vsock-stream:3:1'), { family: 'vsock', cid: 3, port: 1, socketType: 'stream' })
  t.same(parseNotifySocket('vsock-dgram:4294967295:4294967295'),
    { family: 'vsock', cid: 4294967295, port: 4294967295, socketType: 'dgram' })
  t.same(parseNotifySocket('vsock-seqpacket:1:2'), { family: 'vsock', cid: 1, port: 2, socketType: 'seqpacket' })
  t.end()
})

t.test('errors name NOTIFY_SOCKET and the rule', (t) => {
  const cases: [string, RegExp][] = [
    ['', /is empty/],
    ['relative/notify', /absolute path/],
    ['./notify', /absolute path/],
    ['/', /names no socket/],
    ['@', /names no socket/],
    ['/' + 'a'.repeat(107), /108 bytes long.*at most 107.*sun_path is 108/],
    ['@' + 'a'.repeat(107), /at most 107/],
    ['vsock:2', /vsock:CID:PORT/],
    ['vsock::1234', /must name a CID/],
    ['vsock:x:1', /CID that is not a number/],
    ['vsock:1:99999999999', /port that is not a number/],
    ['vsock-bogus:1:2', /absolute path/],
  ]
  for (const [value, rule] of cases) {
    t.throws(() => parseNotifySocket(value),
      { code: 'ERR_SDNOTIFY_INVALID_SOCKET', field: 'NOTIFY_SOCKET', message: rule },
      JSON.stringify(value).slice(0, 30))
  }
  t.equal((parseNotifySocket('/' + 'a'.repeat(106)) as { sockaddr: Buffer }).sockaddr.length, 110,
    'exactly 107 bytes is fine')
  t.end()
})
