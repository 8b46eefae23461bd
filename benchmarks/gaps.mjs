// How the latency services space their messages, 1 ms apart so the manager has drained the socket:
// "idle" sleeps (what an occasional notification pays: caches and CPU cool down in between), "warm"
// busy-waits (the per-message cost alone). floor.c does the same with usleep() and a busy loop.
import { spawnSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'

export const GAP_MS = 1
let sink = 0

export const gaps = {
  idle: () => new Promise((resolve) => setTimeout(resolve, GAP_MS)),
  // Spins on small-integer arithmetic and reads the clock every ~2,000 steps: a loop reading the clock
  // each time allocates a number per read, and the garbage collector would then bill the next send.
  warm: async () => {
    const until = performance.now() + GAP_MS
    do {
      for (let j = 0; j < 2000; j++) sink = (sink * 31 + j) | 0
    } while (performance.now() < until)
  },
}

/**
 * Times `n` calls of `send(i)` per gap: total µs until the promise settles, and µs until the call
 * returned (the event loop's share: an asynchronous write returns before it completes).
 */
export async function timeSends (n, send, gapNames = ['idle', 'warm']) {
  await send(-1) // warm-up: the first send loads the transport
  const result = {}
  for (const gap of gapNames) {
    const total = []
    const loop = []
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint()
      const pending = send(i)
      const t1 = process.hrtime.bigint()
      await pending
      const t2 = process.hrtime.bigint()
      total.push(Number(t2 - t0) / 1000)
      loop.push(Number(t1 - t0) / 1000)
      await gaps[gap]()
    }
    if (gap === 'idle') Object.assign(result, { us: total, loopUs: loop })
    else result.warmUs = total
  }
  return result
}

/**
 * Measures every method in `rounds` interleaved rounds and pools the samples: a machine whose speed
 * drifts (a VM's neighbours) then shifts every method alike instead of whichever ran at the bad moment.
 * Each method is `{ name, n, time(n) }` where time resolves to `{ us, loopUs?, warmUs? }` for n messages.
 */
export async function measureInRounds (methods, rounds) {
  const results = {}
  for (let round = 0; round < rounds; round++) {
    for (const method of methods) {
      if (results[method.name]?.error) continue
      try {
        const sample = await method.time(Math.ceil(method.n / rounds))
        const pooled = (results[method.name] ??= {})
        for (const [key, values] of Object.entries(sample)) pooled[key] = [...(pooled[key] ?? []), ...values]
      } catch (error) {
        results[method.name] = { error: error.message }
      }
    }
  }
  return results
}

/** floor.c's own measurement, both gaps: each send's duration as C sees it. */
export function timeFloor (n) {
  const floor = (gap) => {
    const run = spawnSync(process.env.BENCH_FLOOR, ['send', String(n), gap], { encoding: 'utf8' })
    if (run.status !== 0) throw new Error(`floor: ${run.stderr || run.error}`)
    return run.stdout.trim().split('\n').map((ns) => Number(ns) / 1000)
  }
  const us = floor('idle')
  return { us, loopUs: us, warmUs: floor('warm') }
}
