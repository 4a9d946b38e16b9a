/**
 * Retry budget (Finagle's RetryBudget): every request deposits `ratio` of a retry, every retry
 * withdraws one, and deposits expire after `ttlMs`, so over any window of ttlMs the retries never
 * exceed ratio * requests + minPerSecond * ttlSeconds. A failing upstream then sees at most
 * (1 + ratio) times its normal traffic instead of maxAttempts times, while a quiet gateway can
 * still retry a few requests a second.
 *
 * Counts sit in a ring of time slots (allocation-free; a check sums `slots` numbers).
 */
export interface RetryBudgetOptions {
  /** Retries allowed per request over the window. */
  readonly ratio: number
  /** Retries always allowed per second of the window, on top of the ratio. */
  readonly minPerSecond: number
  /** How long a deposit counts (ms); Finagle's default is 10 s. */
  readonly ttlMs?: number
  /** Resolution of expiry; the window is ttlMs split into this many slots. */
  readonly slots?: number
}

export class RetryBudget {
  readonly ratio: number
  readonly reserve: number
  private readonly slotMs: number
  /** Net balance (deposits minus withdrawals) per slot. */
  private readonly balances: Float64Array
  /** Which slot number (floor(now / slotMs)) each entry currently holds. */
  private readonly epochs: Float64Array

  constructor(opts: RetryBudgetOptions) {
    const ttlMs = opts.ttlMs ?? 10_000
    const slots = opts.slots ?? 10
    if (!(opts.ratio >= 0) || !(opts.minPerSecond >= 0) || !(ttlMs > 0) || !(slots >= 1)) throw new RangeError('invalid retry budget options')
    this.ratio = opts.ratio
    this.reserve = (opts.minPerSecond * ttlMs) / 1000
    this.slotMs = ttlMs / slots
    this.balances = new Float64Array(slots)
    this.epochs = new Float64Array(slots).fill(-1)
  }

  /** Count one client request (not its retries). */
  recordRequest(nowMs: number): void {
    this.add(this.ratio, nowMs)
  }

  /** Whether a retry would fit the budget now (does not spend it). */
  canRetry(nowMs: number): boolean {
    // Sums of fractional deposits (0.2 * 5) must still reach a whole retry despite rounding.
    return this.reserve + this.balance(nowMs) >= 1 - 1e-9
  }

  /** Spend one retry. Use tryRetry() to check and spend in one step. */
  recordRetry(nowMs: number): void {
    this.add(-1, nowMs)
  }

  tryRetry(nowMs: number): boolean {
    if (!this.canRetry(nowMs)) return false
    this.add(-1, nowMs)
    return true
  }

  /** Retries available now, for metrics. */
  available(nowMs: number): number {
    return Math.max(0, Math.floor(this.reserve + this.balance(nowMs) + 1e-9))
  }

  private add(amount: number, nowMs: number): void {
    const epoch = Math.floor(nowMs / this.slotMs)
    const i = epoch % this.balances.length
    if (this.epochs[i] !== epoch) {
      this.epochs[i] = epoch
      this.balances[i] = 0
    }
    this.balances[i]! += amount
  }

  private balance(nowMs: number): number {
    const current = Math.floor(nowMs / this.slotMs)
    const oldest = current - this.balances.length + 1
    let sum = 0
    for (let i = 0; i < this.balances.length; i++) {
      const e = this.epochs[i]!
      if (e >= oldest && e <= current) sum += this.balances[i]!
    }
    return sum
  }
}
