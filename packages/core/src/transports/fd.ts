// systemd ≥ 253: `OpenFile=/run/systemd/notify:notify` (or the user manager's $XDG_RUNTIME_DIR/systemd/notify)
// passes a socket already connected to the notify socket (exec-invoke.c connect_unix_harder(): SOCK_DGRAM first).
// Writing to it needs no native code at all.
import { write, writeSync } from 'node:fs'
import { sendFailed } from '../system-errors.js'
import type { Transport } from './transport.js'

export class FdTransport implements Transport {
  readonly name = 'fd' as const
  readonly capabilities = { fdPassing: false, abstractNames: true, ownPid: true }
  readonly fd: number

  constructor(fd: number) {
    this.fd = fd
  }

  send(message: Buffer): Promise<void> {
    // fs.write runs on libuv's thread pool: a full queue blocks a pool thread, never the event loop.
    return new Promise((resolve, reject) => {
      write(this.fd, message, 0, message.length, null, (error, written) => {
        if (error) reject(sendFailed(this.name, error.code ?? 'EIO', 'write', ` on fd ${this.fd}`))
        else if (written !== message.length) reject(sendFailed(this.name, 'EIO', 'write', `: ${written} of ${message.length} bytes written`))
        else resolve()
      })
    })
  }

  sendSync(message: Buffer): void {
    let written: number
    try {
      written = writeSync(this.fd, message)
    } catch (error) {
      throw sendFailed(this.name, (error as NodeJS.ErrnoException).code ?? 'EIO', 'write', ` on fd ${this.fd}`)
    }
    if (written !== message.length) throw sendFailed(this.name, 'EIO', 'write', `: ${written} of ${message.length} bytes written`)
  }

  close(): void {
    // The descriptor belongs to the process (systemd passed it); keep it open for later notifiers.
  }
}
