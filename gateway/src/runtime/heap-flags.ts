/**
 * How V8 reclaims the Buffers a request reads and drops, set once when the process starts.
 *
 * Node 24's V8 (13.6) raised the young generation's capacity from 8 to 32 MB. That moved the point
 * where V8 reclaims short-lived ArrayBuffer memory with a scavenge (young ArrayBuffer bytes
 * reaching twice the semi-space: 32 MB before, 128 MB now) above the external-memory soft limit
 * (64 MB past the last full GC) that starts a full mark-compact. So the Buffers of a request's life
 * (its body as node:http copies it out of each read, the body put together from those chunks,
 * upstream reads) are reclaimed by marking the whole heap: 56-62 mark-compacts in 6 s of 64 KB
 * bodies on one connection (nodejs/node#61967 and #63863). Two flags put them back with scavenges
 * (none then, and half the CPU per request):
 *
 * - `--scavenger-max-new-space-capacity-mb=8`, the young generation's cap before Node 24, which
 *   brings the scavenge trigger back below the soft limit;
 * - `--external-memory-accounted-in-global-limit` (newer V8 releases do this by default), which
 *   counts external memory in V8's global limit instead of starting a full GC at the soft limit.
 *
 * Measured in docs/benchmarks.md, "Large bodies and the external-memory GC". Both are set here,
 * before the gateway's modules load, rather than on the command line: V8 reads the global-limit
 * flag whenever it decides on a collection, and the cap, set after start, still moves the scavenge
 * trigger while (as far as measured) leaving the young generation's own size alone. On the command
 * line the cap cost the standard request 3-4% more CPU at full load; set here, nothing measurable.
 * V8 flags are not allowed in NODE_OPTIONS, so a process started with either flag, either way, on
 * the node command line keeps that choice.
 */
import { setFlagsFromString } from 'node:v8'

export const HEAP_FLAGS: readonly string[] = ['--scavenger-max-new-space-capacity-mb=8', '--external-memory-accounted-in-global-limit']

/** Whether `execArgv` sets V8 flag `flag` (`--name` or `--name=value`) either way: by name, `--no-` or a value included, `_` or `-`. */
export function givenOnCommandLine(flag: string, execArgv: readonly string[] = process.execArgv): boolean {
  const name = flag.slice(2).split('=')[0]!
  return execArgv.some((arg) => arg.replaceAll('_', '-').includes(name))
}

/** Sets each flag that `execArgv` does not already set; returns the ones it set. */
export function applyHeapFlags(execArgv: readonly string[] = process.execArgv): string[] {
  const applied: string[] = []
  for (const flag of HEAP_FLAGS) {
    if (givenOnCommandLine(flag, execArgv)) continue
    setFlagsFromString(flag)
    applied.push(flag)
  }
  return applied
}
