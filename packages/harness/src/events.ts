// Test services append what happened as JSON lines; these read them back.
import { readFileSync } from 'node:fs'

export interface ServiceEvent {
  event: string
  [key: string]: unknown
}

export function readEvents (file: string): ServiceEvent[] {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as ServiceEvent)
  } catch {
    return []
  }
}

/**
 * The `name` events once there are `count` of them (or the timeout passed): systemd may act on a message before
 * the service has logged it.
 */
export async function waitForEvents (file: string, name: string, count = 1, timeoutMs = 5000): Promise<ServiceEvent[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = readEvents(file).filter((e) => e.event === name)
    if (found.length >= count || Date.now() > deadline) return found
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** The first `name` event, waiting for it. */
export async function waitForEvent (file: string, name: string, timeoutMs = 5000): Promise<ServiceEvent | undefined> {
  return (await waitForEvents(file, name, 1, timeoutMs))[0]
}
