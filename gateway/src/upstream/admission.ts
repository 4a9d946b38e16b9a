/**
 * Admission to one upstream's pool: at most `capacity` requests (connections x pipelining) are
 * handed to undici at once; up to `maxPending` more wait here, each for at most `queueTimeoutMs`
 * (Envoy's max_pending_requests, with a deadline). undici's own queue is unbounded and has no
 * deadline, so it is never where a request waits.
 *
 * Who waits and who goes first follows the key's priority class (fair-queue.ts): a free slot goes
 * to the most important class waiting, and within a class round-robin between tenants. A class
 * may fill only its share of `maxPending` (`limits.queueShares`; the rest is kept for the classes
 * above it), and when the queue is full for a newcomer, the most recent waiter of a less important
 * class gives it its place (that waiter is shed: it fails over, or gets 503).
 *
 * A waiter that gives up (queue deadline, client gone, another attempt won) is marked and skipped
 * when its turn comes, so leaving costs nothing.
 */
import { CLASS_COUNT, FairQueue, NORMAL_CLASS, type FairItem } from './fair-queue.ts'

export interface Waiter extends FairItem {
  /** Called with the slot granted; the waiter must call `release()` once done with it. */
  admitted(): void
  /** A more important request took this waiter's place in the queue: it no longer waits. */
  shed(): void
}

export type Admission = 'now' | 'queued' | 'full'

/** Every class may use the whole queue. */
export const FULL_SHARES: readonly number[] = Object.freeze(new Array<number>(CLASS_COUNT).fill(1))

/** `bound x share` per class, rounded up, and never above the bound. */
export function classBounds(bound: number, shares: readonly number[]): number[] {
  return Array.from({ length: CLASS_COUNT }, (_, c) => Math.min(bound, Math.ceil(bound * (shares[c] ?? 1))))
}

export class AdmissionQueue {
  readonly capacity: number
  readonly maxPending: number
  readonly queueTimeoutMs: number
  /** Waiters each class may add to the queue (its share of `maxPending`). */
  readonly bounds: readonly number[]
  /** Requests holding a slot (handed to the pool and not finished). */
  inFlight: number
  private readonly queue: FairQueue<Waiter>

  constructor(capacity: number, maxPending: number, queueTimeoutMs: number, shares: readonly number[] = FULL_SHARES) {
    this.capacity = capacity
    this.maxPending = maxPending
    this.queueTimeoutMs = queueTimeoutMs
    this.bounds = Object.freeze(classBounds(maxPending, shares))
    this.inFlight = 0
    this.queue = new FairQueue<Waiter>()
  }

  /** Waiters that have not given up. */
  get waiting(): number {
    return this.queue.size
  }

  /** Waiters of one class (PRIORITY_CLASS index). */
  waitingIn(priority: number): number {
    return this.queue.inClass(priority)
  }

  /** No slot free and no room to wait for a request of normal class. */
  get full(): boolean {
    return this.fullFor(NORMAL_CLASS)
  }

  /** No slot free, and a request of class `priority` could neither wait nor take a lower class's place. */
  fullFor(priority: number): boolean {
    if (this.inFlight < this.capacity) return false
    if (this.queue.size < (this.bounds[priority] ?? this.maxPending)) return false
    return this.maxPending === 0 || !this.queue.hasBelow(priority)
  }

  /** 'now': the caller holds a slot. 'queued': `waiter.admitted()` runs later. 'full': neither. */
  admit(waiter: Waiter): Admission {
    if (this.inFlight < this.capacity && this.queue.size === 0) {
      this.inFlight++
      return 'now'
    }
    if (this.queue.size < (this.bounds[waiter.priority] ?? this.maxPending)) {
      this.queue.push(waiter)
      return 'queued'
    }
    if (this.maxPending === 0) return 'full'
    const displaced = this.queue.evictBelow(waiter.priority)
    if (displaced === undefined) return 'full'
    this.queue.push(waiter)
    displaced.shed()
    return 'queued'
  }

  /** A queued waiter gave up (it must have set `gaveUp` first). */
  left(waiter: Waiter): void {
    this.queue.remove(waiter)
  }

  /** A slot holder is done: the next waiter (most important class, tenants in turn) gets the slot. */
  release(): void {
    this.inFlight--
    while (this.inFlight < this.capacity) {
      const w = this.queue.shift()
      if (w === undefined) break
      this.inFlight++
      w.admitted()
    }
  }
}
