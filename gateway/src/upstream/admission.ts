/**
 * Admission to one upstream's pool: at most `capacity` requests (connections x pipelining) are
 * handed to undici at once; up to `maxPending` more wait here in arrival order, each for at most
 * `queueTimeoutMs` (Envoy's max_pending_requests, with a deadline). undici's own queue is
 * unbounded and has no deadline, so it is never where a request waits.
 *
 * A waiter that gives up (queue deadline, client gone, another attempt won) is marked and skipped
 * when its turn comes, so leaving costs nothing.
 */

export interface Waiter {
  /** Set when the waiter no longer wants a slot; it is then skipped. */
  readonly gaveUp: boolean
  /** Called with the slot granted; the waiter must call `release()` once done with it. */
  admitted(): void
}

export type Admission = 'now' | 'queued' | 'full'

export class AdmissionQueue {
  readonly capacity: number
  readonly maxPending: number
  readonly queueTimeoutMs: number
  /** Requests holding a slot (handed to the pool and not finished). */
  active: number
  /** Waiters that have not given up. */
  waiting: number
  private queue: (Waiter | undefined)[]
  private head: number

  constructor(capacity: number, maxPending: number, queueTimeoutMs: number) {
    this.capacity = capacity
    this.maxPending = maxPending
    this.queueTimeoutMs = queueTimeoutMs
    this.active = 0
    this.waiting = 0
    this.queue = []
    this.head = 0
  }

  /** No slot free and no room to wait: a new request would be refused. */
  get full(): boolean {
    return this.active >= this.capacity && (this.waiting >= this.maxPending || this.maxPending === 0)
  }

  /** 'now': the caller holds a slot. 'queued': `waiter.admitted()` runs later. 'full': neither. */
  admit(waiter: Waiter): Admission {
    if (this.active < this.capacity && this.waiting === 0) {
      this.active++
      return 'now'
    }
    if (this.waiting >= this.maxPending) return 'full'
    this.queue.push(waiter)
    this.waiting++
    return 'queued'
  }

  /** A queued waiter gave up (it must have set `gaveUp` first). */
  left(): void {
    this.waiting--
  }

  /** A slot holder is done: the next waiter still waiting gets the slot. */
  release(): void {
    this.active--
    while (this.active < this.capacity && this.head < this.queue.length) {
      const w = this.queue[this.head]!
      this.queue[this.head++] = undefined
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head)
        this.head = 0
      }
      if (w.gaveUp) continue
      this.waiting--
      this.active++
      w.admitted()
    }
    if (this.head === this.queue.length && this.head > 0) {
      this.queue = []
      this.head = 0
    }
  }
}
