/**
 * One limit counter as this replica sees it: a lease of units already granted by the store,
 * spent locally with no I/O, and refilled in the background before it runs dry. Leases are at
 * most `leaseFraction` of the limit and shrink as the limit fills (a quarter of what is left,
 * shared among the live replicas), so what the replicas hold unspent never lets them admit
 * more than the limit, and never keeps much of it from the replica that needs it.
 */
import type { GaugeGrant, Grant, LimitStore } from './store.ts'
import type { Window } from './windows.ts'

/** Unspent lease goes back to the store after this long, so a quiet replica holds nothing for long. */
const LEASE_TTL_MS = 1_000
/**
 * A refusal from a shared store is remembered this long at most (others may give capacity back
 * sooner), so a client hammering a spent limit costs one round trip per interval, not per request.
 */
const REFUSAL_MEMORY_MS = 250

export interface Taken {
  /** The bucket the units were counted in (for reconciling them later). */
  readonly bucket: number
}

export class Refused {
  /** When the request would fit again (ms since the epoch; Infinity: never, it exceeds the limit). */
  readonly retryAt: number
  constructor(retryAt: number) {
    this.retryAt = retryAt
  }
}

export class WindowCounter {
  readonly key: string
  readonly limit: number
  readonly window: Window
  readonly #store: LimitStore
  readonly #maxLease: number
  #lease = 0
  #leaseBucket = 0
  #leaseExpiresAt = 0
  /** The store's count at the last grant, across replicas (our lease included). */
  #used = 0
  #refill: Promise<unknown> | null = null
  /** Refused until then without asking the store again (the store said so). */
  #refusedUntil = 0
  #refusedNeed = 0
  lastUsedAt = 0

  constructor(key: string, limit: number, window: Window, store: LimitStore, leaseFraction: number) {
    this.key = key
    this.limit = limit
    this.window = window
    this.#store = store
    this.#maxLease = store.shared ? Math.floor(limit * leaseFraction) : 0
  }

  /** What is left in the window as far as this replica knows. */
  remaining(): number {
    return Math.max(0, this.limit - this.#used + this.#lease)
  }

  take(n: number, now: number): Taken | Refused | Promise<Taken | Refused> {
    this.lastUsedAt = now
    if (this.#lease > 0 && (now >= this.#leaseExpiresAt || this.window.bucket(now) - this.#leaseBucket >= this.window.buckets)) this.#returnLease(now)
    if (this.#lease >= n) {
      this.#lease -= n
      const taken = { bucket: this.#leaseBucket }
      if (this.#lease < this.#maxLease / 2 && this.#refill === null) this.#prefetch(now)
      return taken
    }
    if (now < this.#refusedUntil && n >= this.#refusedNeed) return new Refused(this.#refusedUntil)
    if (this.#refill !== null) return this.#refill.then(() => this.take(n, Date.now()))
    // A lease too small for this request goes back; the request asks the store for all it needs.
    if (this.#lease > 0) this.#returnLease(now)
    const need = n
    const result = this.#store.grant({ key: this.key, window: this.window, now, limit: this.limit, need, want: need + this.#chunk() })
    if (result instanceof Promise) {
      const p = result.then((g) => this.#afterGrant(g, n, now))
      this.#refill = p
      void p.finally(() => {
        if (this.#refill === p) this.#refill = null
      })
      return p
    }
    return this.#afterGrant(result, n, now)
  }

  /** Gives back units taken in `bucket` (a reservation larger than the use), or adds what was used beyond it. */
  adjust(bucket: number, delta: number, now: number): void {
    if (delta === 0) return
    if (delta < 0) this.#refusedUntil = 0
    if (delta < 0 && bucket === this.#leaseBucket && now < this.#leaseExpiresAt) {
      // Still ours to spend, up to a lease's worth: no round trip. The rest goes back at once.
      const keep = Math.min(-delta, Math.max(0, this.#maxLease - this.#lease))
      this.#lease += keep
      delta += keep
      if (delta === 0) return
    }
    this.#used += delta
    this.#store.adjust(this.key, this.window, bucket, delta, now)
  }

  /** Gives an expired lease back (the limiter calls this every second for every counter). */
  expire(now: number): void {
    if (this.#lease > 0 && now >= this.#leaseExpiresAt) this.#returnLease(Math.min(now, Date.now()))
  }

  /** A take that was refused elsewhere in the same request is undone locally. */
  refund(taken: Taken, n: number, now: number): void {
    this.adjust(taken.bucket, -n, now)
  }

  #afterGrant(g: Grant, n: number, now: number): Taken | Refused {
    this.#used = g.used
    if (g.granted === 0) {
      this.#refusedUntil = this.#store.shared ? Math.min(g.retryAt, now + REFUSAL_MEMORY_MS) : 0
      this.#refusedNeed = n
      return new Refused(g.retryAt)
    }
    const bucket = this.window.bucket(now)
    this.#refusedUntil = 0
    this.#lease = g.granted - n
    this.#leaseBucket = bucket
    this.#leaseExpiresAt = now + LEASE_TTL_MS
    return { bucket }
  }

  #prefetch(now: number): void {
    const want = this.#chunk()
    if (want <= 0) return
    const result = this.#store.grant({ key: this.key, window: this.window, now, limit: this.limit, need: 1, want })
    const apply = (g: Grant): void => {
      this.#used = g.used
      if (g.granted === 0) return
      const bucket = this.window.bucket(now)
      if (this.#lease > 0 && bucket !== this.#leaseBucket) this.#returnLease(now)
      this.#lease += g.granted
      this.#leaseBucket = bucket
      this.#leaseExpiresAt = now + LEASE_TTL_MS
    }
    if (result instanceof Promise) {
      const p = result.then(apply)
      this.#refill = p
      void p.finally(() => {
        if (this.#refill === p) this.#refill = null
      })
    } else apply(result)
  }

  #chunk(): number {
    if (this.#maxLease === 0) return 0
    const left = this.limit - this.#used
    return Math.max(0, Math.min(this.#maxLease, Math.floor(left / (4 * this.#store.replicas()))))
  }

  #returnLease(now: number): void {
    const unspent = this.#lease
    this.#lease = 0
    this.#refusedUntil = 0
    if (unspent > 0) {
      this.#used -= unspent
      this.#store.adjust(this.key, this.window, this.#leaseBucket, -unspent, now)
    }
  }
}

/** Requests in flight: slots held in the store per replica, spent and returned locally. */
export class GaugeCounter {
  readonly key: string
  readonly limit: number
  readonly #store: LimitStore
  readonly #maxLease: number
  #held = 0
  #inFlight = 0
  #acquiring: Promise<unknown> | null = null
  #heldEverywhere = 0
  lastUsedAt = 0

  constructor(key: string, limit: number, store: LimitStore, leaseFraction: number) {
    this.key = key
    this.limit = limit
    this.#store = store
    this.#maxLease = store.shared ? Math.floor(limit * leaseFraction) : 0
  }

  remaining(): number {
    return Math.max(0, this.limit - this.#heldEverywhere + (this.#held - this.#inFlight))
  }

  take(now: number): Taken | Refused | Promise<Taken | Refused> {
    this.lastUsedAt = now
    if (this.#held > this.#inFlight) {
      this.#inFlight++
      return GAUGE_TAKEN
    }
    if (this.#acquiring !== null) return this.#acquiring.then(() => this.take(Date.now()))
    const left = this.limit - this.#heldEverywhere
    const extra = this.#maxLease === 0 ? 0 : Math.max(0, Math.min(this.#maxLease, Math.floor(left / (4 * this.#store.replicas()))))
    const result = this.#store.acquire(this.key, this.limit, 1, 1 + extra)
    if (result instanceof Promise) {
      const p = result.then((g) => this.#afterAcquire(g))
      this.#acquiring = p
      void p.finally(() => {
        if (this.#acquiring === p) this.#acquiring = null
      })
      return p
    }
    return this.#afterAcquire(result)
  }

  release(): void {
    this.#inFlight--
    const spare = this.#held - this.#inFlight
    // Keep a small lease of free slots; give the rest back so other replicas can use them.
    const keep = this.#maxLease
    if (spare > keep) {
      const n = spare - keep
      this.#held -= n
      this.#heldEverywhere -= n
      this.#store.release(this.key, n)
    }
  }

  #afterAcquire(g: GaugeGrant): Taken | Refused {
    this.#heldEverywhere = g.held
    if (g.granted === 0) return new Refused(Date.now() + 1_000)
    this.#held += g.granted
    this.#inFlight++
    return GAUGE_TAKEN
  }
}

const GAUGE_TAKEN: Taken = Object.freeze({ bucket: 0 })
