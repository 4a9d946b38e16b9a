/**
 * How long this process's event loop was stalled (a long callback, a GC, the process starved of
 * CPU) during an interval, so a first token delayed by the gateway itself does not teach a pod's
 * prefill pace (PrefillPace): a tick every `intervalMs` that runs late by `late` ms records a
 * stall of that length ending then. Ticks only while someone holds it (the inference-aware
 * balancer's snapshot); the timer is unref'd. `tick` takes the clock, so tests drive it.
 */
export class LoopStalls {
  readonly intervalMs: number
  /** Lateness below this is ordinary scheduling jitter, not a stall (ms). */
  readonly minStallMs: number
  /** at[k]: clock at the end of stall k; lag[k]: its length. A ring, newest at head - 1. */
  private readonly at: Float64Array
  private readonly lag: Float64Array
  private head: number
  private count: number
  /** Clock of the last tick; -1 while not ticking. */
  private last: number
  private users: number
  private timer: NodeJS.Timeout | null

  constructor(intervalMs = 10, minStallMs = 5, capacity = 512) {
    this.intervalMs = intervalMs
    this.minStallMs = minStallMs
    this.at = new Float64Array(capacity)
    this.lag = new Float64Array(capacity)
    this.head = 0
    this.count = 0
    this.last = -1
    this.users = 0
    this.timer = null
  }

  /** One tick at `nowMs`: the loop was late by the time past the interval since the last tick. */
  tick(nowMs: number): void {
    const late = this.last >= 0 ? nowMs - this.last - this.intervalMs : 0
    this.last = nowMs
    if (late < this.minStallMs) return
    this.at[this.head] = nowMs
    this.lag[this.head] = late
    this.head = (this.head + 1) % this.at.length
    if (this.count < this.at.length) this.count++
  }

  /**
   * Stall time within (fromMs, toMs] (ms): recorded stalls, each counted only for its part after
   * fromMs, plus the tick overdue right now (a stall the timer has not reported yet, as when the
   * first token's callback runs before the late timer does).
   */
  between(fromMs: number, toMs: number): number {
    let total = 0
    if (this.last >= 0) {
      const overdue = toMs - this.last - this.intervalMs
      if (overdue >= this.minStallMs) total += Math.min(overdue, toMs - fromMs)
    }
    const size = this.at.length
    for (let k = 1; k <= this.count; k++) {
      const i = (this.head - k + size) % size
      const end = this.at[i]!
      if (end <= fromMs) break
      if (end > toMs) continue
      const lag = this.lag[i]!
      total += lag < end - fromMs ? lag : end - fromMs
    }
    return total
  }

  /** Starts ticking for one more holder. */
  acquire(): void {
    if (this.users++ > 0) return
    this.last = performance.now()
    this.timer = setInterval(() => this.tick(performance.now()), this.intervalMs)
    this.timer.unref()
  }

  /** One holder fewer; the last one stops the timer. */
  release(): void {
    if (this.users === 0 || --this.users > 0) return
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.last = -1
  }
}

/** The process's one monitor: every inference-aware snapshot holds it while it runs. */
export const loopStalls = new LoopStalls()
