/**
 * Gives back the memory that booting used and the running gateway does not need
 * (docs/benchmarks.md, "Idle memory"). Loading the modules, validating the config and building
 * the snapshot allocate far more, with far more of it surviving, than serving does: V8 grows its
 * young generation to its full size on the way (two 16 MiB semi-spaces) and never shrinks it at
 * idle, because Node's V8 never judges the allocation rate low enough for its memory reducer to
 * run. One memory-reducing full collection (the kind V8 runs before giving up on a heap limit)
 * returns that young generation and boot's garbage, and with a lower bytecode age for that one
 * collection (below) the bytecode of code that ran only once.
 *
 * It runs once, when the upstream pools are warm and before readiness can be observed, and only
 * while no request is in flight (main.ts): a client that sent one before the gateway was ready
 * does not wait on it. The young generation grows back as traffic needs it.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { releaseCompileCache } from './compile-cache.ts'
import { givenOnCommandLine } from './heap-flags.ts'

/**
 * V8 flushes the bytecode of a function that has not run for `--bytecode-old-age` full
 * collections (6 by default): the boot collection alone flushes nothing. For that collection the
 * age is 1, so what ran only while booting (module bodies, the config's validation, building the
 * server and its schemas) gives its bytecode back; a function that does run again is compiled
 * again from its source on that call, as V8 does for any flushed function. About 1 MB of the idle
 * figure (docs/benchmarks.md, "Idle memory"). The default is put back after; a process started
 * with its own `--bytecode-old-age` keeps it and is left alone.
 */
const BOOT_BYTECODE_AGE = '--bytecode-old-age=1'
const DEFAULT_BYTECODE_AGE = '--bytecode-old-age=6'

export type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void

export interface BootMemoryReport {
  /** Resident set size before and after, in bytes. */
  readonly rssBefore: number
  readonly rssAfter: number
  readonly ms: number
}

/**
 * Runs the collection. V8's `gc` is exposed for the one call (unless the process already has
 * it, `--expose-gc`) and hidden again, so V8's flags are what they were: the compile cache's
 * entries stay valid (they are keyed by the flags).
 */
export function releaseBootMemory(execArgv: readonly string[] = process.execArgv): BootMemoryReport {
  const rssBefore = process.memoryUsage.rss()
  const started = performance.now()
  // Modules loaded while booting (on first use) leave their compile cache entries too.
  releaseCompileCache()
  const flush = !givenOnCommandLine(BOOT_BYTECODE_AGE, execArgv)
  if (flush) setFlagsFromString(BOOT_BYTECODE_AGE)
  try {
    collect()({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  } finally {
    if (flush) setFlagsFromString(DEFAULT_BYTECODE_AGE)
  }
  return { rssBefore, rssAfter: process.memoryUsage.rss(), ms: performance.now() - started }
}

/** V8's `gc` (the process's own with `--expose-gc`, else exposed for this call and hidden again). */
export function collect(): Collect {
  const own = (globalThis as { gc?: unknown }).gc
  if (typeof own === 'function') return own as Collect
  setFlagsFromString('--expose-gc')
  try {
    // The flag adds `gc` to contexts created after it is set, not to this one.
    return runInNewContext('gc') as Collect
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}
