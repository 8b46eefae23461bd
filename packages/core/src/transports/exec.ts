// Last resort: spawn systemd-notify(1). The datagram then comes from a child process, so a non-root
// service needs NotifyAccess=all; and --no-block would race (the child may exit before the manager
// reads its cgroup), so we keep systemd-notify's default synchronous barrier. No shell is involved.
import { execFile, execFileSync } from 'node:child_process'
import { SdNotifyError } from '../errors.js'
import type { Transport } from './transport.js'

export class ExecTransport implements Transport {
  readonly name = 'exec' as const
  readonly capabilities = { fdPassing: false, abstractNames: true, ownPid: false }
  readonly command: string
  private readonly notifySocket: string
  private readonly timeoutMs: number

  constructor (command: string, notifySocket: string, timeoutMs: number) {
    this.command = command
    this.notifySocket = notifySocket
    this.timeoutMs = timeoutMs
  }

  send (message: Buffer): Promise<void> {
    const assignments = message.toString('utf8').split('\n')
    return new Promise((resolve, reject) => {
      execFile(
        this.command,
        assignments,
        { env: { ...process.env, NOTIFY_SOCKET: this.notifySocket }, timeout: this.timeoutMs, windowsHide: true },
        (error, _stdout, stderr) => {
          if (!error) return resolve()
          const code = (error as NodeJS.ErrnoException).code
          let reason = `exit status ${code}`
          if (typeof code === 'string') reason = code
          else if (error.killed) reason = `timed out after ${this.timeoutMs} ms`
          const output = stderr ? `: ${String(stderr).trim()}` : ''
          const message = `sdnotify: exec transport: ${this.command} failed (${reason})${output}`
          reject(
            new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', message, {
              transport: this.name,
              ...(typeof code === 'string' ? { errno: code, syscall: 'spawn' } : {}),
            })
          )
        }
      )
    })
  }

  sendSync (message: Buffer): void {
    try {
      execFileSync(this.command, message.toString('utf8').split('\n'), {
        env: { ...process.env, NOTIFY_SOCKET: this.notifySocket },
        timeout: this.timeoutMs,
        stdio: ['ignore', 'ignore', 'pipe'],
      })
    } catch (error) {
      // execFileSync's error carries the child's stderr as a Buffer (no encoding asked for).
      const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim()
      const message = `sdnotify: exec transport: ${this.command} failed${stderr ? `: ${stderr}` : ''}`
      throw new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', message, { transport: this.name })
    }
  }

  /** systemd-notify already waits for the manager (its default barrier) before it exits. */
  async barrier (): Promise<void> {}

  close (): void {}
}
