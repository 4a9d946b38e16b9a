/**
 * Admission from saturation: when every available member of a group has at least
 * `queueThreshold` requests waiting in its own queue (vLLM's num_requests_waiting plus what this
 * gateway sent since the scrape), a new request would only deepen a queue. It is held instead,
 * in arrival order, until a member drops below the threshold (re-checked after every metrics
 * scrape) or `holdMs` passes, or shed at once with 503 GW_ERR_UPSTREAMS_SATURATED and
 * `Retry-After` (mode `shed`, or more than `maxHeld` already held).
 *
 * Members without fresh metrics are never counted as saturated: no data is no reason to refuse.
 *
 * Priority: `RouteRequest.priority` reaches `decide()`. Nothing sets it yet; the intended rule once
 * tenants carry priorities is that a saturated group sheds lower priorities first and releases
 * held requests highest priority first (see `HeldQueue.push`).
 */
import type { AdmissionConfig } from './config.ts'
import type { Member } from './member.ts'

export type AdmissionVerdict = 'admit' | 'hold' | 'shed'

/** Called once per held request: true when it may go on now, false when it is shed. */
export type HeldCallback = (admitted: boolean) => void

class Held {
  readonly callback: HeldCallback
  readonly priority: number
  timer: NodeJS.Timeout | null

  constructor(callback: HeldCallback, priority: number) {
    this.callback = callback
    this.priority = priority
    this.timer = null
  }
}

export class Admission {
  readonly config: AdmissionConfig
  private readonly staleAfterMs: number
  private held: Held[] = []

  constructor(config: AdmissionConfig, staleAfterMs: number) {
    this.config = config
    this.staleAfterMs = staleAfterMs
  }

  get enabled(): boolean {
    return this.config.queueThreshold > 0
  }

  get heldCount(): number {
    return this.held.length
  }

  /** Every available member is at or past the queue threshold (false when none is available). */
  saturated(members: readonly Member<unknown>[], nowMs: number): boolean {
    const threshold = this.config.queueThreshold
    if (threshold <= 0) return false
    let available = 0
    for (const m of members) {
      if (!m.available(nowMs)) continue
      available++
      if (!m.pod.fresh(nowMs, this.staleAfterMs) || m.pod.queue(m.outstanding) < threshold) return false
    }
    return available > 0
  }

  /** What to do with a new request. `priority` is the tenancy hook (see the file comment). */
  decide(members: readonly Member<unknown>[], nowMs: number, _priority = 0): AdmissionVerdict {
    // Requests already held go first: a newcomer may not overtake them while any wait.
    if (this.held.length === 0 && !this.saturated(members, nowMs)) return 'admit'
    if (this.config.mode === 'shed' || this.held.length >= this.config.maxHeld) return 'shed'
    return 'hold'
  }

  /** Holds a request that `decide` said to hold; `callback` runs exactly once. */
  hold(callback: HeldCallback, priority = 0): void {
    const h = new Held(callback, priority)
    h.timer = setTimeout(() => this.expire(h), this.config.holdMs)
    h.timer.unref()
    this.held.push(h)
  }

  /** Lets held requests go, oldest first, while some member is below the threshold. */
  release(members: readonly Member<unknown>[], nowMs: number): void {
    while (this.held.length > 0 && !this.saturated(members, nowMs)) {
      const h = this.held.shift()!
      if (h.timer !== null) clearTimeout(h.timer)
      // The callback dispatches at once, so the next check already counts it as outstanding.
      h.callback(true)
    }
  }

  /** Ends every hold: shed (shutting down) or admitted (a reload replaced the snapshot; its members still serve). */
  endAll(admitted: boolean): void {
    const held = this.held
    this.held = []
    for (const h of held) {
      if (h.timer !== null) clearTimeout(h.timer)
      h.callback(admitted)
    }
  }

  private expire(h: Held): void {
    const i = this.held.indexOf(h)
    if (i === -1) return
    this.held.splice(i, 1)
    h.callback(false)
  }
}
