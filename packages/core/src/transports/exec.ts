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

  constructor(command: string, notifySocket: string, timeoutMs: number) {
    this.command = command
    this.notifySocket = notifySocket
    this.timeoutMs = timeoutMs
  }

  send(message: Buffer): Promise<void> {
    const assignments = message.toString('utf8').split('\n')
    return new Promise((resolve, reject) => {
      execFile(
        this.command,
        assignments,
        { env: { ...process.env, NOTIFY_SOCKET: this.notifySocket }, timeout: this.timeoutMs, windowsHide: true },
        (error, _stdout, stderr) => {
          if (!error) return resolve()
          const code = (error as NodeJS.ErrnoException).code
          const reason = typeof code === 'string' ? code : error.killed ? `timed out after ${this.timeoutMs} ms` : `exit status ${code}`
          reject(
            new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', `sdnotify: exec transport: ${this.command} failed (${reason})${stderr ? `: ${String(stderr).trim()}` : ''}`, {
              transport: this.name,
              ...(typeof code === 'string' ? { errno: code, syscall: 'spawn' } : {}),
            }),
          )
        },
      )
    })
  }

  sendSync(message: Buffer): void {
    try {
      execFileSync(this.command, message.toString('utf8').split('\n'), {
        env: { ...process.env, NOTIFY_SOCKET: this.notifySocket },
        timeout: this.timeoutMs,
        stdio: ['ignore', 'ignore', 'pipe'],
      })
    } catch (error) {
      const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim()
      throw new SdNotifyError('ERR_SDNOTIFY_SEND_FAILED', `sdnotify: exec transport: ${this.command} failed${stderr ? `: ${stderr}` : ''}`, { transport: this.name })
    }
  }

  /** systemd-notify already waits for the manager (its default barrier) before it exits. */
  async barrier(): Promise<void> {}

  close(): void {}
}
