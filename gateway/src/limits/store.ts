/**
 * Where limit counts live. Two kinds of counter:
 * - windowed counts (requests, tokens, cost): buckets of a `Window`; a grant adds to the current
 *   bucket only if the whole window stays within the limit;
 * - gauges (requests in flight): slots held per replica, so a replica that dies gives its slots
 *   back when its heartbeat stops.
 * `MemoryLimitStore` keeps them in this process; `RedisLimitStore` (redis-store.ts) shares them
 * between replicas with server-side scripts implementing the same arithmetic.
 */
import { leavesAt, type Window } from './windows.ts'

export interface GrantRequest {
  /** Counter id, unique per rule, dimension and subject. */
  readonly key: string
  readonly window: Window
  readonly now: number
  readonly limit: number
  /** The least that must fit for the grant to be made at all. */
  readonly need: number
  /** What to take when it fits: `need` plus a lease to spend locally later. */
  readonly want: number
}

export interface Grant {
  /** Units added to the current bucket: 0 (refused), or between need and want. */
  readonly granted: number
  /** The window's count after the grant, across every replica. */
  readonly used: number
  /** When refused: when `need` fits again (ms since the epoch; Infinity if it never can). */
  readonly retryAt: number
}

export interface GaugeGrant {
  readonly granted: number
  /** Slots held across every live replica after the grant. */
  readonly held: number
}

export interface LimitStore {
  /** True when other replicas share the counts, so leases save round trips. */
  readonly shared: boolean
  grant(r: GrantRequest): Grant | Promise<Grant>
  /** Adds `delta` (negative gives back) to a bucket still in its window; never fails the caller. */
  adjust(key: string, window: Window, bucket: number, delta: number, now: number): void
  acquire(key: string, limit: number, need: number, want: number): GaugeGrant | Promise<GaugeGrant>
  release(key: string, n: number): void
  /** Live replicas sharing the store (1 for memory). */
  replicas(): number
  start(): void
  close(): Promise<void>
}

interface Buckets {
  /** bucket -> count, oldest first (buckets are only ever appended at the end). */
  readonly counts: Map<number, number>
  expiresAt: number
}

/** The arithmetic of a grant over a bucket list; shared by the memory store and the Lua script's tests. */
export function decide(counts: Iterable<[number, number]>, r: GrantRequest): { granted: number; used: number; freeBucket: number | null } {
  const used = sumWindow(counts, r)
  const avail = r.limit - used.total
  const granted = avail >= r.need ? Math.min(r.want, avail) : 0
  let freeBucket: number | null = null
  if (granted === 0) {
    let freed = avail
    for (const [b, v] of used.live) {
      freed += v
      if (freed >= r.need) {
        freeBucket = b
        break
      }
    }
  }
  return { granted, used: used.total + granted, freeBucket }
}

function sumWindow(counts: Iterable<[number, number]>, r: GrantRequest): { total: number; live: [number, number][] } {
  const oldest = r.window.bucket(r.now) - r.window.buckets + 1
  let total = 0
  const live: [number, number][] = []
  for (const [b, v] of counts) {
    if (b < oldest) continue
    total += v
    live.push([b, v])
  }
  live.sort((a, b) => a[0] - b[0])
  return { total, live }
}

export function retryAtOf(window: Window, freeBucket: number | null): number {
  return freeBucket === null ? Number.POSITIVE_INFINITY : leavesAt(window, freeBucket)
}

export class MemoryLimitStore implements LimitStore {
  readonly shared = false
  readonly #windows = new Map<string, Buckets>()
  readonly #gauges = new Map<string, number>()
  #sweeper: NodeJS.Timeout | null = null

  start(): void {
    if (this.#sweeper !== null) return
    // Counters whose window has passed are dropped, so client-driven subjects cannot pile up.
    this.#sweeper = setInterval(() => this.sweep(Date.now()), 10_000)
    this.#sweeper.unref()
  }

  sweep(now: number): void {
    for (const [key, entry] of this.#windows) if (entry.expiresAt <= now) this.#windows.delete(key)
  }

  grant(r: GrantRequest): Grant {
    const entry = this.#entry(r.key, r.now, r.window)
    const oldest = r.window.bucket(r.now) - r.window.buckets + 1
    for (const b of entry.counts.keys()) {
      if (b >= oldest) break
      entry.counts.delete(b)
    }
    const d = decide(entry.counts, r)
    if (d.granted > 0) {
      const b = r.window.bucket(r.now)
      entry.counts.set(b, (entry.counts.get(b) ?? 0) + d.granted)
      entry.expiresAt = r.now + r.window.ttlMs
    }
    return { granted: d.granted, used: d.used, retryAt: d.granted > 0 ? 0 : retryAtOf(r.window, d.freeBucket) }
  }

  adjust(key: string, window: Window, bucket: number, delta: number, now: number): void {
    const entry = this.#windows.get(key)
    if (entry === undefined || bucket <= window.bucket(now) - window.buckets) return
    const v = Math.max(0, (entry.counts.get(bucket) ?? 0) + delta)
    entry.counts.set(bucket, v)
    if (!isSorted(entry.counts)) resort(entry.counts)
  }

  acquire(key: string, limit: number, need: number, want: number): GaugeGrant {
    const held = this.#gauges.get(key) ?? 0
    const avail = limit - held
    const granted = avail >= need ? Math.min(want, avail) : 0
    if (granted > 0) this.#gauges.set(key, held + granted)
    return { granted, held: held + granted }
  }

  release(key: string, n: number): void {
    const held = (this.#gauges.get(key) ?? 0) - n
    if (held > 0) this.#gauges.set(key, held)
    else this.#gauges.delete(key)
  }

  replicas(): number {
    return 1
  }

  /** Entries held (for tests of boundedness). */
  get size(): number {
    return this.#windows.size + this.#gauges.size
  }

  async close(): Promise<void> {
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
    this.#sweeper = null
  }

  #entry(key: string, now: number, window: Window): Buckets {
    let entry = this.#windows.get(key)
    if (entry === undefined) {
      entry = { counts: new Map(), expiresAt: now + window.ttlMs }
      this.#windows.set(key, entry)
    }
    return entry
  }
}

function isSorted(m: Map<number, number>): boolean {
  let prev = Number.NEGATIVE_INFINITY
  for (const b of m.keys()) {
    if (b < prev) return false
    prev = b
  }
  return true
}

function resort(m: Map<number, number>): void {
  const entries = [...m].sort((a, b) => a[0] - b[0])
  m.clear()
  for (const [b, v] of entries) m.set(b, v)
}
