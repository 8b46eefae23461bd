// Reads what a private systemd manager logs, as timestamped lines in a file (argv[2]).
// A user manager logs to /dev/console (it reopens the console rather than use stderr; on this VM that is the
// serial port), so the runner bind-mounts this pseudo-terminal over /dev/console inside the manager's mount
// namespace and re-executes the manager, which then opens it. A separate process, reading in a blocking loop,
// so the manager never waits on a full terminal buffer because the runner was busy. Prints the pty's path.
import { openSync, readSync, writeSync } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import koffi from 'koffi'

const libc = koffi.load('libc.so.6')
const posixOpenpt = libc.func('int posix_openpt(int)')
const grantpt = libc.func('int grantpt(int)')
const unlockpt = libc.func('int unlockpt(int)')
const ptsname = libc.func('const char *ptsname(int)')
const O_RDWR = 0o2
const O_NOCTTY = 0o400

const master = posixOpenpt(O_RDWR | O_NOCTTY)
if (master < 0 || grantpt(master) !== 0 || unlockpt(master) !== 0) {
  console.error(`console-tap: no pseudo-terminal (errno ${koffi.errno()})`)
  process.exit(1)
}
const out = openSync(process.argv[2], 'a')
process.stdout.write(`${ptsname(master)}\n`)

const buffer = Buffer.alloc(1 << 16)
let partial = ''
const decoder = new StringDecoder('utf8') // a read may end inside a multi-byte character
for (;;) {
  let n
  try {
    n = readSync(master, buffer, 0, buffer.length, null)
  } catch (error) {
    // EIO: no writer has the terminal open (before the manager opens it, between re-executions).
    if (error.code !== 'EIO' && error.code !== 'EAGAIN') throw error
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    continue
  }
  const lines = (partial + decoder.write(buffer.subarray(0, n))).split(/\r*\n/)
  partial = lines.pop() ?? ''
  const now = Date.now()
  if (lines.length > 0) writeSync(out, lines.map((line) => `${now} ${line}\n`).join(''))
}
