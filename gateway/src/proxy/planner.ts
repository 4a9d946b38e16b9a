/**
 * Which member the next attempt of a call goes to, and whether there may be one: the first pick,
 * failover after a failed attempt, and a hedge racing a slow first attempt. The retry policy
 * decides what may be retried and spends the shared budget; exclusions keep a call off members
 * it already tried (and off peers, for a request another gateway forwarded).
 */
import type { FailureKind } from '../routing/config.ts'
import type { RetryPolicy } from '../routing/retry-policy.ts'
import type { RouteRequest } from '../routing/route-request.ts'
import type { Resolution, Router } from '../routing/router.ts'
import type { Upstream } from '../upstream/upstream.ts'
import type { UpstreamMember } from './context.ts'

export class AttemptPlanner {
  readonly #router: Router<Upstream>
  readonly #policy: RetryPolicy
  readonly #resolution: Resolution<Upstream>
  readonly #affinityKey: string | null
  readonly #route: RouteRequest | null
  /**
   * Members excluded from the next pick: peers for a forwarded request, and every member already
   * dispatched to. Built only when a second pick happens; until then `#first` is the only one.
   */
  #tried: Set<UpstreamMember> | null
  #first: UpstreamMember | null
  #last: UpstreamMember | null
  #attempts: number

  constructor(router: Router<Upstream>, resolution: Resolution<Upstream>, affinityKey: string | null, excluded: Set<UpstreamMember> | null, route: RouteRequest | null = null) {
    this.#route = route
    this.#router = router
    this.#policy = router.retry
    this.#resolution = resolution
    this.#affinityKey = affinityKey
    this.#tried = excluded
    this.#first = null
    this.#last = null
    this.#attempts = 0
  }

  /** Attempts dispatched so far. */
  get attempts(): number {
    return this.#attempts
  }

  /** The member of the latest attempt (the upstream label of a call that failed), or null. */
  get last(): UpstreamMember | null {
    return this.#last
  }

  /** The first attempt's member, or null when none is available; counts the request for the retry budget. */
  first(now: number): UpstreamMember | null {
    this.#policy.budget.recordRequest(now)
    return this.#router.pick(this.#resolution, this.#affinityKey, this.#tried, now, this.#route)
  }

  /** Milliseconds after which a hedge should race the first attempt, or null for no hedge. */
  hedgeDelay(now: number): number | null {
    const ms = this.#resolution.hedge.delayMs(now)
    return ms !== null && this.#policy.maxAttempts > 1 ? ms : null
  }

  /** Records an attempt sent to `member`. */
  dispatched(member: UpstreamMember): void {
    this.#attempts++
    this.#last = member
    if (this.#tried !== null) this.#tried.add(member)
    else this.#first = member
  }

  /**
   * After a failed attempt: another member, or the same one for a connection-level failure (a
   * fresh connection usually works where a stale pooled one was reset). Null when the policy,
   * the deadline (absolute ms, 0 = none), the members or the budget say no; the budget is spent
   * only when a retry is really sent.
   */
  retry(kind: FailureKind, now: number, deadlineAt: number): UpstreamMember | null {
    const policy = this.#policy
    if (!policy.allows(kind, this.#attempts)) return null
    if (deadlineAt !== 0 && now >= deadlineAt) return null
    let member = this.#router.pick(this.#resolution, this.#affinityKey, this.#exclusions(), now, this.#route)
    if (member === null && (kind === 'reset' || kind === 'connect')) member = this.#router.pick(this.#resolution, this.#affinityKey, null, now, this.#route)
    if (member === null || !policy.budget.tryRetry(now)) return null
    return member
  }

  /** A member for a hedge beside the running attempt, or null. */
  hedge(now: number): UpstreamMember | null {
    if (!this.#policy.hasAttemptsLeft(this.#attempts)) return null
    const member = this.#router.pick(this.#resolution, this.#affinityKey, this.#exclusions(), now, this.#route)
    if (member === null || !this.#policy.budget.tryRetry(now)) return null
    return member
  }

  /**
   * `member` cannot take the attempt (its queue is full): keep the call off it and pick another,
   * without spending retry budget (nothing was sent). Null when no other member is available.
   */
  instead(member: UpstreamMember, now: number): UpstreamMember | null {
    this.#exclusions().add(member)
    return this.#router.pick(this.#resolution, this.#affinityKey, this.#tried, now)
  }

  #exclusions(): Set<UpstreamMember> {
    if (this.#tried === null) {
      this.#tried = new Set()
      if (this.#first !== null) this.#tried.add(this.#first)
    }
    return this.#tried
  }
}
