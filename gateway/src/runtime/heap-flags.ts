/**
 * How V8 reclaims the Buffers a request reads and drops, set once when the process starts.
 *
 * Node 24's V8 (13.6) raised the young generation's capacity to 32 MB. That moved the point where
 * V8 reclaims short-lived ArrayBuffer memory with a scavenge (young ArrayBuffer bytes reaching
 * twice the semi-space, now 128 MB) above the external-memory soft limit (64 MB past the last full
 * GC) that starts a full mark-compact. So the Buffers of a request's life (its body as node:http
 * copies it out of each read, the body put together from those chunks, upstream reads) are
 * reclaimed by marking the whole heap, every few dozen requests when bodies are large
 * (nodejs/node#61967 and #63863). Counting external memory in V8's global limit, as newer V8
 * releases do by default, hands them back to scavenges. Measured on 512 KB bodies: a mark-compact
 * every ~16 requests before, against about a quarter as many, and half the CPU per request
 * (docs/benchmarks.md, "Large bodies and the external-memory GC").
 *
 * The flag is read by V8 whenever it decides on a collection, so setting it from here, before the
 * gateway's modules load, is enough. A process started with the flag either way keeps that choice.
 */
import { setFlagsFromString } from 'node:v8'

export const EXTERNAL_MEMORY_FLAG = 'external-memory-accounted-in-global-limit'

/** Sets the flag unless `execArgv` already says yes or no to it; true when it set it. */
export function applyHeapFlags(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((arg) => arg.replaceAll('_', '-').includes(EXTERNAL_MEMORY_FLAG))) return false
  setFlagsFromString(`--${EXTERNAL_MEMORY_FLAG}`)
  return true
}
