// Issue 14: fd-store address checks and descriptor lookup, the edges: no host, host names, servers without a
// listening handle.
import t from 'tap'
import { addressMismatch, serverFd } from '../src/fd-store.js'

t.test('addressMismatch without a host names "*"; with a host name the port decides (no DNS lookup)', (t) => {
  const bound = { family: 'IPv4', address: '127.0.0.1', port: 8080 } as const
  t.equal(addressMismatch(bound, { port: 9090 }), 'is bound to 127.0.0.1:8080, the configuration asks for *:9090')
  t.equal(addressMismatch(bound, { host: 'app.example', port: 8080 }), undefined, 'same port: reused')
  t.equal(addressMismatch(bound, { host: 'app.example', port: 9090 }),
    'is bound to 127.0.0.1:8080, the configuration asks for app.example:9090')
  t.equal(addressMismatch(bound, { host: '10.0.0.1' }),
    'is bound to 127.0.0.1:8080, the configuration asks for 10.0.0.1:0', 'another IP: not reused')
  t.end()
})

t.test('serverFd: undefined for anything without a listening descriptor, never a bogus number', (t) => {
  for (const server of [undefined, null, {}, { _handle: null }, { _handle: {} }, { _handle: { fd: -1 } },
    { _handle: { fd: '3' } }]) {
    t.equal(serverFd(server), undefined, JSON.stringify(server))
  }
  t.equal(serverFd({ _handle: { fd: 0 } }), 0)
  t.end()
})
