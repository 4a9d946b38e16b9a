/**
 * When to send a hedged (second) attempt for a request whose first has not answered: after a fixed
 * delay, or after the observed p95 time to first byte of the same model, so only the slowest ~5%
 * of requests are duplicated. No estimate yet (cold start) means no hedging.
 */
import type { HedgeConfig } from './config.ts'
import { LatencyQuantile } from './latency-quantile.ts'

export class HedgeDelay {
  readonly enabled: boolean
  private readonly fixedMs: number | null
  private readonly p95: LatencyQuantile | null

  constructor(cfg: HedgeConfig) {
    this.enabled = cfg.enabled
    this.fixedMs = typeof cfg.delayMs === 'number' ? cfg.delayMs : null
    this.p95 = cfg.enabled && this.fixedMs === null ? new LatencyQuantile({ quantile: 0.95 }) : null
  }

  /** Time to first byte of a successful attempt. */
  record(latencyMs: number, nowMs: number): void {
    this.p95?.record(latencyMs, nowMs)
  }

  /** Milliseconds to wait before hedging, or null: do not hedge. */
  delayMs(nowMs: number): number | null {
    if (!this.enabled) return null
    return this.fixedMs ?? this.p95!.get(nowMs)
  }
}
