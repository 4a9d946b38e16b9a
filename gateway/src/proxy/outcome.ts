/**
 * What a finished call records: the request counter, durations, the gateway's added time to
 * first byte, and the token usage read from the last body chunks of a 200 (usage comes last).
 */
import type { GatewayMetrics } from '../telemetry/metrics.ts'
import { readUsage } from '../telemetry/usage.ts'
import type { Attempt } from './attempt.ts'
import type { Target } from './context.ts'

export class CallOutcome {
  /** The status the client got (499 when it left first); 0 until one is known. */
  status: number
  #lastChunk: Buffer | null
  #prevChunk: Buffer | null

  constructor() {
    this.status = 0
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
  record(metrics: GatewayMetrics, route: string, model: string, startedAt: number, winner: Attempt | null, last: Target | null, now: number): void {
    const upstreamName = winner?.target.upstreamName ?? last?.upstreamName ?? 'none'
    metrics.countRequest(route, model, upstreamName, this.status)
    metrics.observeDuration(route, (now - startedAt) / 1000)
    if (winner !== null && winner.firstByteAt > 0) {
      const upstreamMs = winner.firstByteAt - winner.startedAt
      metrics.observeFirstByte(upstreamName, upstreamMs / 1000)
      metrics.observeAdded(route, (winner.firstByteAt - startedAt - upstreamMs) / 1000)
    }
    if (this.status === 200) {
      const usage = readUsage(this.#lastChunk, this.#prevChunk)
      if (usage !== null) metrics.countTokens(model, usage.prompt, usage.completion)
    }
    this.#lastChunk = null
    this.#prevChunk = null
  }
}
