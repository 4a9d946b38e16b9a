/**
 * Admission from saturation: when every available member of a group has at least
 * `queueThreshold` requests waiting in its own queue (vLLM's num_requests_waiting plus what this
 * gateway sent since the scrape), a new request would only deepen a queue. It is held instead
 * (in order: see below) until a member drops below the threshold (re-checked after every metrics
 * scrape) or `holdMs` passes, or shed at once with 503 GW_ERR_UPSTREAMS_SATURATED and
 * `Retry-After` (mode `shed`, or more than `maxHeld` already held).
 *
 * Members without fresh metrics are never counted as saturated: no data is no reason to refuse.
 *
 * Priority and fairness: each class sees its own threshold and hold bound, its share
 * (`limits.queueShares`) of `queueThreshold` and `maxHeld`, so less important classes are held or
 * shed while more important ones still go. Held requests are released most important class
 * first, tenants of one class in turn (upstream/fair-queue.ts), and a newcomer that finds the hold
 * full takes the place of the most recent held request of a less important class (which is shed).
 */
import type { AdmissionConfig } from './config.ts'
import type { Member } from './member.ts'
import { classBounds, FULL_SHARES } from '../upstream/admission.ts'
import { FairQueue, NORMAL_CLASS, type FairItem } from '../upstream/fair-queue.ts'

export type AdmissionVerdict = 'admit' | 'hold' | 'shed'

/** Called once per held request: true when it may go on now, false when it is shed. */
export type HeldCallback = (admitted: boolean) => void

class Held implements FairItem {
  readonly callback: HeldCallback
  readonly priority: number
  readonly tenant: string
  timer: NodeJS.Timeout | null
  gaveUp: boolean

  constructor(callback: HeldCallback, priority: number, tenant: string) {
    this.callback = callback
    this.priority = priority
    this.tenant = tenant
    this.timer = null
    this.gaveUp = false
  }
}

export class Admission {
  readonly config: AdmissionConfig
  private readonly staleAfterMs: number
  /** Queue depth at which each class sees a member as saturated. */
  readonly thresholds: readonly number[]
  /** Requests of each class (and above) that may be held at once. */
  readonly holdBounds: readonly number[]
  private readonly held = new FairQueue<Held>()

  constructor(config: AdmissionConfig, staleAfterMs: number, shares: readonly number[] = FULL_SHARES) {
    this.config = config
    this.staleAfterMs = staleAfterMs
    this.thresholds = Object.freeze(classBounds(config.queueThreshold, shares).map((t) => (config.queueThreshold > 0 ? Math.max(1, t) : 0)))
    this.holdBounds = Object.freeze(classBounds(config.maxHeld, shares).map((b) => Math.max(1, b)))
  }

  get enabled(): boolean {
    return this.config.queueThreshold > 0
  }

  get heldCount(): number {
    return this.held.size
  }

  /** Held requests of one class (PRIORITY_CLASS index). */
  heldIn(priority: number): number {
    return this.held.inClass(priority)
  }

  /** Every available member is at or past the queue threshold (false when none is available). */
  saturated(members: readonly Member<unknown>[], nowMs: number, threshold = this.config.queueThreshold): boolean {
    if (threshold <= 0) return false
    let available = 0
    for (const m of members) {
      if (!m.available(nowMs)) continue
      available++
      if (!m.pod.fresh(nowMs, this.staleAfterMs) || m.pod.queue(m.inFlight) < threshold) return false
    }
    return available > 0
  }

  /** What to do with a new request of class `priority` (0 is critical). */
  decide(members: readonly Member<unknown>[], nowMs: number, priority = NORMAL_CLASS): AdmissionVerdict {
    // Requests of its class or above already held go first: a newcomer may not overtake them.
    if (this.held.atOrAbove(priority) === 0 && !this.saturated(members, nowMs, this.thresholds[priority] ?? this.config.queueThreshold)) return 'admit'
    if (this.config.mode === 'shed') return 'shed'
    if (this.held.size < (this.holdBounds[priority] ?? this.config.maxHeld) || this.held.hasBelow(priority)) return 'hold'
    return 'shed'
  }

  /** Holds a request that `decide` said to hold; `callback` runs exactly once. */
  hold(callback: HeldCallback, priority = NORMAL_CLASS, tenant = 'default'): void {
    const h = new Held(callback, priority, tenant)
    h.timer = setTimeout(() => this.expire(h), this.config.holdMs)
    h.timer.unref()
    // A full hold: the most recent held request of a less important class makes room.
    const displaced = this.held.size >= (this.holdBounds[priority] ?? this.config.maxHeld) ? this.held.evictBelow(priority) : undefined
    this.held.push(h)
    if (displaced !== undefined) this.end(displaced, false)
  }

  /** Lets held requests go, most important class first, tenants in turn, while their class sees room. */
  release(members: readonly Member<unknown>[], nowMs: number): void {
    for (;;) {
      const top = this.held.topClass()
      if (top === -1 || this.saturated(members, nowMs, this.thresholds[top] ?? this.config.queueThreshold)) return
      const h = this.held.shift()!
      // The callback dispatches at once, so the next check already counts it as outstanding.
      this.end(h, true)
    }
  }

  /** Ends every hold: shed (shutting down) or admitted (a reload replaced the snapshot; its members still serve). */
  endAll(admitted: boolean): void {
    for (const h of this.held.drain()) this.end(h, admitted)
  }

  private end(h: Held, admitted: boolean): void {
    h.gaveUp = true
    if (h.timer !== null) clearTimeout(h.timer)
    h.timer = null
    h.callback(admitted)
  }

  private expire(h: Held): void {
    if (h.gaveUp) return
    this.held.remove(h)
    this.end(h, false)
  }
}
