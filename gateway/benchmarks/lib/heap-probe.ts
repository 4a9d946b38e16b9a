/**
 * Preloaded into a measured gateway by scenarios that report memory (`--import` this file, with
 * VELOX_BENCH_HEAP_PROBE naming a file): on SIGUSR2 it runs one memory-reducing full GC and
 * writes the process's memory right after it, so what is compared is what is held, not garbage
 * that V8 has not collected yet. `gc` is taken the way runtime/boot-memory.ts takes it, so the
 * gateway runs with the same V8 flags as in production. Bench mode only: nothing in gateway/src
 * imports it.
 */
import { renameSync, writeFileSync } from 'node:fs'
import { collect } from '../../src/runtime/boot-memory.ts'

export interface HeapProbeSample {
  /** Increments with every sample, so a reader knows a fresh one from the last. */
  readonly seq: number
  readonly rss: number
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
  /** How long the GC stopped the process, in ms. */
  readonly gcMs: number
  /** performance.timeOrigin + now, in ms since the epoch, at the GC's start and end. */
  readonly startedAt: number
  readonly endedAt: number
}

const out = process.env.VELOX_BENCH_HEAP_PROBE
if (out !== undefined && out !== '') {
  const gc = collect()
  let seq = 0
  process.on('SIGUSR2', () => {
    const startedAt = performance.timeOrigin + performance.now()
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    const endedAt = performance.timeOrigin + performance.now()
    const m = process.memoryUsage()
    const sample: HeapProbeSample = { seq: ++seq, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, gcMs: endedAt - startedAt, startedAt, endedAt }
    // Written beside, then renamed: the reader never sees half a sample.
    writeFileSync(`${out}.tmp`, JSON.stringify(sample))
    renameSync(`${out}.tmp`, out)
  })
}

/** The path to preload (`--import`) into a gateway that should answer `readHeapProbe`. */
export const HEAP_PROBE_PRELOAD = new URL(import.meta.url).pathname

/** Asks the process for a sample (SIGUSR2) and waits for it. */
export async function readHeapProbe(pid: number, file: string, timeoutMs = 60_000): Promise<HeapProbeSample> {
  const { readFileSync } = await import('node:fs')
  const read = (): HeapProbeSample | null => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as HeapProbeSample
    } catch {
      return null
    }
  }
  const last = read()?.seq ?? 0
  process.kill(pid, 'SIGUSR2')
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const sample = read()
    if (sample !== null && sample.seq > last) return sample
    if (Date.now() > deadline) throw new Error(`no heap probe sample from pid ${pid} in ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
