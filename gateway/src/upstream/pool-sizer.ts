/**
 * Adaptive pool sizing. undici opens connections on demand, so the first requests of a burst wait
 * on TCP (and TLS) handshakes; and keep-alive closes idle ones, so after a quiet spell the next
 * burst pays again. The sizer watches each member's concurrency and keeps
 * `peak x (1 + headroom)` connections open (at least `warm`, at most `connections`), where the peak
 * decays slowly: connections are opened ahead of demand, and let go (by the pool's own idle
 * timeout, shorter than the upstream's) only when demand stays low.
 */
import type { Upstream } from './upstream.ts'

/** What the sizer reads of a routing member (routing's Member has this shape). */
export interface SizedMember {
  /** Requests in flight on the member now. */
  readonly inFlight: number
  readonly draining: boolean
  available(nowMs: number): boolean
  readonly upstream: Upstream
}

/** Per tick, the remembered peak keeps this share of itself (~30 s half-life at 1 s ticks). */
const PEAK_DECAY = 0.977

export class PoolSizer {
  private readonly members: () => readonly SizedMember[]
  private readonly intervalMs: number
  private timer: NodeJS.Timeout | null

  constructor(members: () => readonly SizedMember[], intervalMs = 1_000) {
    this.members = members
    this.intervalMs = intervalMs
    this.timer = null
  }

  /** Starts the periodic resize (idempotent). */
  start(): void {
    if (this.timer !== null) return
    this.timer = setInterval(() => this.tick(), this.intervalMs)
    this.timer.unref()
  }

  /** Called by the request path's own bookkeeping: a member's in-flight count just rose. */
  observe(member: SizedMember): void {
    const up = member.upstream
    if (member.inFlight > up.peakConcurrency) up.peakConcurrency = member.inFlight
  }

  /** The connection count a member should hold now. */
  target(member: SizedMember): number {
    const pool = member.upstream.config.pool
    const peak = member.upstream.peakConcurrency
    return Math.min(pool.connections, Math.max(pool.warm, Math.ceil(peak * (1 + pool.headroom))))
  }

  tick(): void {
    for (const member of this.members()) {
      if (!member.upstream.config.pool.adaptive || member.draining || !member.available(performance.now())) continue
      const up = member.upstream
      up.peakConcurrency = Math.max(member.inFlight, up.peakConcurrency * PEAK_DECAY)
      // Idle connections take requests first: reaching N connections takes N requests in flight.
      const target = this.target(member)
      const stats = member.upstream.stats()
      if (stats.connected < target) void member.upstream.open(target - stats.running).catch(() => 0)
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }
}
