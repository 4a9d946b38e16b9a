/**
 * Circuit breaker and outlier ejection for one member (and, with a fixed ejection, for the cache's
 * Redis tier: cache/redis-tier.ts).
 *
 * closed --N consecutive failures--> open (ejected for base * 2^k ms, capped) --time passes-->
 * one probe request may start (half-open) --success--> closed / --failure--> open, longer.
 *
 * The doubling resets once the breaker has stayed closed for `maxEjectionMs`, so a member that
 * failed once an hour ago is not punished like one that flaps. A passing active health check ends
 * an ejection early (the next request becomes the probe), as Envoy un-ejects on a passing check;
 * it does not close the breaker by itself, because /health passing says little about inference.
 */
import type { OutlierConfig } from './config.ts'

export const BreakerState = { CLOSED: 0, OPEN: 1, HALF_OPEN: 2 } as const
export type BreakerStateValue = (typeof BreakerState)[keyof typeof BreakerState]

export class Breaker {
  readonly failureThreshold: number
  readonly baseEjectionMs: number
  readonly maxEjectionMs: number
  state: BreakerStateValue
  consecutiveFailures: number
  /** Ejections in a row since the doubling last reset. */
  ejections: number
  /** While open: when a probe may start. */
  openUntil: number
  /** When the breaker last closed (or was created). */
  closedAt: number
  /** When the current half-open probe started. */
  probeStartedAt: number

  constructor(cfg: OutlierConfig, nowMs = 0) {
    this.failureThreshold = cfg.consecutiveFailures
    this.baseEjectionMs = cfg.baseEjectionMs
    this.maxEjectionMs = cfg.maxEjectionMs
    this.state = BreakerState.CLOSED
    this.consecutiveFailures = 0
    this.ejections = 0
    this.openUntil = 0
    this.closedAt = nowMs
    this.probeStartedAt = 0
  }

  /**
   * Whether a request may be sent now: closed, or open with the ejection over and no probe in
   * flight. A probe with no verdict after maxEjectionMs (its outcome was never reported) no longer
   * blocks the next one, so a lost report cannot shut a member out for good.
   */
  allows(nowMs: number): boolean {
    const s = this.state
    return (
      s === BreakerState.CLOSED ||
      (s === BreakerState.OPEN && nowMs >= this.openUntil) ||
      (s === BreakerState.HALF_OPEN && nowMs - this.probeStartedAt >= this.maxEjectionMs)
    )
  }

  /** A request was sent; if the ejection is over it becomes the single half-open probe. */
  onStart(nowMs: number): void {
    if (this.state === BreakerState.CLOSED) return
    if (this.allows(nowMs)) {
      this.state = BreakerState.HALF_OPEN
      this.probeStartedAt = nowMs
    }
  }

  onSuccess(nowMs: number): void {
    if (this.state === BreakerState.CLOSED) {
      this.consecutiveFailures = 0
    } else if (this.state === BreakerState.HALF_OPEN) {
      this.state = BreakerState.CLOSED
      this.consecutiveFailures = 0
      this.closedAt = nowMs
    }
    // A late success of a request sent before the ejection proves little; the probe decides.
  }

  onFailure(nowMs: number): void {
    if (this.state === BreakerState.CLOSED) {
      if (++this.consecutiveFailures >= this.failureThreshold) this.open(nowMs)
    } else if (this.state === BreakerState.HALF_OPEN) {
      this.open(nowMs)
    }
  }

  /** The probe ended without a verdict (the client went away): let the next request probe instead. */
  onCancel(nowMs: number): void {
    if (this.state === BreakerState.HALF_OPEN) {
      this.state = BreakerState.OPEN
      this.openUntil = nowMs
    }
  }

  /** An active health check passed: end an ejection now so the next request probes. */
  onActiveHealthy(nowMs: number): void {
    if (this.state === BreakerState.OPEN && this.openUntil > nowMs) this.openUntil = nowMs
  }

  /** How long the next ejection would last. */
  nextEjectionMs(nowMs: number): number {
    const k = this.doublingExpired(nowMs) ? 0 : this.ejections
    return Math.min(this.baseEjectionMs * 2 ** Math.min(k, 30), this.maxEjectionMs)
  }

  private doublingExpired(nowMs: number): boolean {
    return this.state === BreakerState.CLOSED && nowMs - this.closedAt >= this.maxEjectionMs
  }

  private open(nowMs: number): void {
    const ms = this.nextEjectionMs(nowMs)
    this.ejections = this.doublingExpired(nowMs) ? 1 : this.ejections + 1
    this.state = BreakerState.OPEN
    this.openUntil = nowMs + ms
    this.consecutiveFailures = 0
  }
}
