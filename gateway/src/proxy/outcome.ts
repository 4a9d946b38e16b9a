/**
 * What a finished call records: the request counter, durations, the gateway's added time to
 * first byte, and the token usage read from the last body chunks of a 200 (usage comes last).
 */
import type { Metering } from '../limits/metering.ts'
import type { GatewayMetrics } from '../telemetry/metrics.ts'
import { readUsage } from '../telemetry/usage.ts'
import type { Attempt } from './attempt.ts'
import type { Target } from './context.ts'

export class CallOutcome {
  /** The status the client got (499 when it left first); 0 until one is known. */
  status: number
  /**
   * The gateway error that ended a response after it started, or null. The client's status stays
   * what it received (a 200); the failure is counted on its own.
   */
  broken: string | null
  #lastChunk: Buffer | null
  #prevChunk: Buffer | null

  constructor() {
    this.status = 0
    this.broken = null
    this.#lastChunk = null
    this.#prevChunk = null
  }

  /** Keeps the last two body chunks: the usage object may straddle them. */
  sawChunk(chunk: Buffer): void {
    this.#prevChunk = this.#lastChunk
    this.#lastChunk = chunk
  }

  /**
   * Records the finished call. `winner` is the attempt whose response the client got (null when
   * none did); `last` labels the upstream of a call that failed.
   */
  record(metrics: GatewayMetrics, route: string, model: string, startedAt: number, winner: Attempt | null, last: Target | null, now: number, metering: Metering | null): void {
    const upstreamName = winner?.target.upstreamName ?? last?.upstreamName ?? 'none'
    metrics.countRequest(route, model, upstreamName, this.status)
    if (this.broken !== null) metrics.countBroken(route, upstreamName, this.broken)
    metrics.observeDuration(route, (now - startedAt) / 1000)
    if (winner !== null && winner.firstByteAt > 0) {
      const upstreamMs = winner.firstByteAt - winner.startedAt
      metrics.observeFirstByte(upstreamName, upstreamMs / 1000)
      metrics.observeAdded(route, (winner.firstByteAt - startedAt - upstreamMs) / 1000)
    }
    const usage = this.status === 200 && this.broken === null ? readUsage(this.#lastChunk, this.#prevChunk) : null
    if (usage !== null) metrics.countTokens(model, usage.prompt, usage.completion)
    metering?.end(usage, winner !== null && winner.firstByteAt > 0)
    this.#lastChunk = null
    this.#prevChunk = null
  }
}
