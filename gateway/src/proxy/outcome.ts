/**
 * What a finished call records: the request counter, durations, the gateway's added time to
 * first byte, and the token usage read from the last body chunks of a 200 (usage comes last).
 */
import type { Metering } from '../limits/metering.ts'
import { round } from '../telemetry/access-log.ts'
import { GEN_AI_OPERATION, type GatewayMetrics } from '../telemetry/metrics.ts'
import { responseModel } from '../telemetry/request-trace.ts'
import type { OutputCapture } from '../telemetry/output-capture.ts'
import { readUsage, type Usage } from '../telemetry/usage.ts'
import type { Attempt } from './attempt.ts'
import type { CallContext, CallRequest, UpstreamMember } from './context.ts'

export class CallOutcome {
  /** The status the client got (499 when it left first); 0 until one is known. */
  status: number
  /** The GW_ERR_* code when the gateway ended the call with an error; null otherwise. */
  error: string | null
  /** Set when the cache answered (a semantic hit that won the race); else the plan says. */
  cache: string | null
  /**
   * The gateway error that ended a response after it started, or null. The client's status stays
   * what it received (a 200); the failure is counted on its own.
   */
  broken: string | null
  #lastChunk: Buffer | null
  #prevChunk: Buffer | null
  /**
   * The first body chunk, kept only for a recording span (it names the response's model). Kept
   * for every stream, it would pin the slab of Node's buffer pool it was cut from for the stream's
   * whole life, and with it the other streams' chunks cut from that slab.
   */
  #firstChunk: Buffer | null
  /** Keep the first chunk (set once the call knows its span records). */
  keepFirstChunk: boolean
  #usage: Usage | null
  /** The completion text for the span, only for a recording span with captureContent on (else null). */
  capture: OutputCapture | null

  constructor() {
    this.status = 0
    this.error = null
    this.cache = null
    this.broken = null
    this.#lastChunk = null
    this.#prevChunk = null
    this.#firstChunk = null
    this.keepFirstChunk = false
    this.#usage = null
    this.capture = null
  }

  /** Keeps the first and the last two body chunks: the usage object may straddle the last two. */
  sawChunk(chunk: Buffer): void {
    if (this.keepFirstChunk && this.#firstChunk === null) this.#firstChunk = chunk
    this.#prevChunk = this.#lastChunk
    this.#lastChunk = chunk
    if (this.capture !== null) this.capture.add(chunk)
  }

  /**
   * Records the finished call. `winner` is the attempt whose response the client got (null when
   * none did); `last` labels the upstream of a call that failed.
   */
  record(metrics: GatewayMetrics, route: string, model: string, startedAt: number, winner: Attempt | null, last: UpstreamMember | null, now: number, metering: Metering | null): void {
    const upstreamName = winner?.member.upstreamName ?? last?.upstreamName ?? 'none'
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
    this.#usage = usage
    metering?.end(usage, winner !== null && winner.firstByteAt > 0)
    this.#lastChunk = null
    this.#prevChunk = null
  }

  /**
   * After `record`: the GenAI histograms of a successful stream (time
   * to first token, time per output token, tokens per second), the SERVER span's end and the
   * access-log line.
   */
  report(ctx: CallContext, request: CallRequest, attempts: number, winner: Attempt | null, last: UpstreamMember | null, now: number): void {
    const metrics = ctx.metrics
    const usage = this.#usage
    const status = this.status
    const firstByteAt = winner !== null ? winner.firstByteAt : 0
    if (status === 200 && firstByteAt > 0 && winner!.sse) {
      metrics.observeGeneration(GEN_AI_OPERATION[request.endpoint.name] ?? request.endpoint.name, request.model, (firstByteAt - request.startedAt) / 1000, (now - firstByteAt) / 1000, usage?.completion ?? 0)
    }
    const trace = request.trace
    const accessLog = ctx.accessLog
    if (trace !== null || accessLog !== null) {
      const member = winner?.member ?? last
      const cache = this.cache ?? request.cache?.outcome ?? null
      const error = this.error ?? (status >= 400 ? String(status) : null)
      if (trace !== null && this.capture !== null) trace.output(this.capture)
      trace?.end(
        { status, cache, responseModel: trace.recording ? responseModel(this.#firstChunk) : null, inputTokens: usage?.prompt ?? null, outputTokens: usage?.completion ?? null, errorType: error },
        member,
        now,
      )
      accessLog?.record({
        id: request.requestId,
        tenant: request.tenant,
        route: request.endpoint.name,
        model: request.model,
        upstream: member?.upstreamName ?? null,
        member: member?.name ?? null,
        status,
        cache,
        ttftMs: firstByteAt > 0 ? round(firstByteAt - request.startedAt) : null,
        durationMs: round(now - request.startedAt),
        inputTokens: usage?.prompt ?? null,
        outputTokens: usage?.completion ?? null,
        attempts,
        error,
      })
    }
    this.#firstChunk = null
    this.#usage = null
    this.capture = null
  }
}
