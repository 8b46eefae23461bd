// Restart under load (issue 12): N × `systemctl restart` while 4 clients make fresh connections, for four ways
// of running the same node:http service (core's fd-store fixture, which boots in ~300 ms). Reports the failed
// requests (refused: nothing listening; in flight: accepted by a process that went away) and the worst latency.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLoad, testPort } from '@sdnotify/systemd-harness'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** @param {import('@sdnotify/systemd-harness').Manager} sd */
export async function restartUnderLoad (sd, repo, restarts) {
  const fixture = join(repo, 'packages/core/fixtures/fd-store-server.mjs')
  const variants = [
    {
      name: 'Type=notify + fdStore (FileDescriptorStoreMax=1)',
      env: { SDN_FDSTORE: 'http' },
      lines: ['Type=notify', 'FileDescriptorStoreMax=1'],
    },
    { name: 'Type=notify + a .socket unit', env: { SDN_ACTIVATED: '1' }, lines: ['Type=notify'], socket: true },
    { name: 'Type=notify (plain)', env: {}, lines: ['Type=notify'] },
    { name: 'Type=simple + ExecStartPost=/bin/sleep 1', env: {}, lines: ['Type=simple', 'ExecStartPost=/bin/sleep 1'] },
  ]
  const results = []
  for (const [index, variant] of variants.entries()) {
    const unit = `bench-load-${index}`
    const port = testPort()
    const log = join(sd.scratch, `${unit}.log`)
    const environment = Object.entries({ SDN_LOG: log, PORT: String(port), SDN_BOOT_MS: '300', ...variant.env })
      .map(([key, value]) => `${key}=${value}`)
      .join(' ')
    await sd.writeService(unit, fixture, [], {
      // A restarted unit must not hit StartLimitBurst= (a failed unit also loses its fd store).
      unit: ['StartLimitIntervalSec=0'],
      service: [...variant.lines, `Environment=${environment}`, 'TimeoutStopSec=10s', 'StandardOutput=null'],
    })
    if (variant.socket) {
      sd.writeUnit(`${unit}.socket`, `[Socket]\nListenStream=127.0.0.1:${port}\nFileDescriptorName=http\n`)
      await sd.daemonReload()
      await sd.systemctl(['start', `${unit}.socket`])
    }
    await sd.systemctl(['start', `${unit}.service`])
    const load = startLoad({ port })
    await sleep(300)
    for (let i = 0; i < restarts; i++) {
      await sd.systemctl(['restart', `${unit}.service`])
      await sleep(300)
    }
    const result = await load.stop()
    await sd.systemctl(['stop', `${unit}.service`, ...(variant.socket ? [`${unit}.socket`] : [])])
    const served = (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter((line) => line.includes('"listening"'))
    results.push({
      name: variant.name,
      restarts,
      requests: result.ok + result.refused + result.inFlight,
      refused: result.refused,
      inFlight: result.inFlight,
      maxLatencyMs: result.maxLatencyMs,
      starts: served.length,
    })
  }
  return results
}
