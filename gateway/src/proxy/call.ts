/**
 * One proxied request: picks a member, dispatches the original bytes on its pool, and streams the
 * answer straight to the client's socket chunk by chunk.
 *
 * Before the first byte reaches the client, nothing is final: a failed attempt (refused or reset
 * connection, timeout, 429/5xx, a stream whose first event is an error) is replaced by one on
 * another member within the attempt and budget limits, and an optional hedge races a second
 * attempt against a slow first one. The first attempt to produce a byte for the client wins and
 * every other is cancelled. After that, a failure ends the response visibly (an SSE error event,
 * or a cut connection), never as a silent success.
 *
 * An Attempt is undici's handler for one dispatch. Callbacks of an attempt that is no longer live
 * (cancelled, or replaced) are ignored.
 */
import type { ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { CACHE_REASON_HEADER, CACHE_STATUS_HEADER, type CachePlan, type Recorder, type ResponseCache, type SemanticResult } from '../cache/index.ts'
import { GatewayError } from '../errors.ts'
import type { FailureKind } from '../routing/config.ts'
import type { Member } from '../routing/member.ts'
import type { Resolution, Router } from '../routing/router.ts'
import { ROUTE_HEADER, type RouteRequest } from '../routing/route-request.ts'
import type { GatewayMetrics } from '../telemetry/metrics.ts'
import { readUsage } from '../telemetry/usage.ts'
import type { Upstream } from '../upstream/upstream.ts'
import type { Endpoint } from './endpoints.ts'
import { sseErrorEvent, writeError } from './respond.ts'
import { classifyUpstreamError, type ClassifiedFailure } from './upstream-errors.ts'

export type Target = Member<Upstream>

/** The cache's part in one call: what to record, and a semantic lookup racing the upstream. */
export interface CallCache {
  readonly cache: ResponseCache
  readonly plan: CachePlan
  /** Aborts the semantic lookup once the upstream answers first. */
  semantic: AbortController | null
  recorder: Recorder | null
}

/** What every call of one runtime snapshot shares; built once per snapshot. */
export interface CallContext {
  readonly metrics: GatewayMetrics
  readonly router: Router<Upstream>
  readonly serverTiming: boolean
  readonly onUpstreamFailure: (call: ProxyCall, target: Target, failure: ClassifiedFailure) => void
  readonly inflight: Set<ProxyCall>
  /** Remembers a member's concurrency so its pool is kept open ahead of demand. */
  readonly observeConcurrency: (target: Target) => void
  /** Counts the calls running on this context's snapshot, so it closes its pools only when idle. */
  readonly track: (delta: 1 | -1) => void
  /** True once shutdown began: responses ask clients to close their connection. */
  readonly shuttingDown: () => boolean
}

type Headers = Record<string, string | string[] | undefined>

/** An upstream error answer held while no retry is left, to pass through whole if it is small. */
interface HeldError {
  status: number
  headers: Headers
  chunks: Buffer[]
  bytes: number
}

/** Error bodies are small; past this a held error is streamed on with backpressure instead. */
const MAX_HELD_ERROR_BYTES = 64 * 1024

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
])
/** Set by the gateway itself on every stream, whatever the upstream said. */
const SSE_OVERRIDDEN = new Set(['x-accel-buffering', 'cache-control', 'content-length'])
const SSE_ERROR_PREFIX = Buffer.from('data: {"error"')
const CANCELLED = new Error('request cancelled by the gateway')
const kCall = Symbol('velox.proxyCall')

interface ResponseWithCall extends ServerResponse {
  [kCall]?: ProxyCall | undefined
}

function onClientClose(this: ResponseWithCall): void {
  this[kCall]?.clientClosed()
}

/** Header names an upstream's `Connection` header marks as hop-by-hop (RFC 9110 7.6.1), or null. */
function connectionListed(value: string | string[] | undefined): string[] | null {
  if (value === undefined) return null
  const v = typeof value === 'string' ? value : value.join(',')
  if (v === 'keep-alive' || v === 'close') return null
  return v.toLowerCase().split(',').map((t) => t.trim())
}

function onHedgeTimer(call: ProxyCall): void {
  call.hedge()
}

export class ProxyCall {
  readonly ctx: CallContext
  readonly res: ServerResponse
  readonly endpoint: Endpoint
  /** The model the client named (metrics label); the upstream gets `resolution.model`. */
  readonly model: string
  readonly resolution: Resolution<Upstream>
  /** What the balancer reads: affinity key, prompt prefix blocks, explain. */
  readonly route: RouteRequest
  readonly body: Buffer
  readonly requestHeaders: readonly string[] | null
  readonly startedAt: number
  /** Absolute deadline (performance.now() ms) for the whole call; 0 = none. */
  deadlineAt: number
  attempts: number
  /**
   * Members excluded from the next pick: peers for a forwarded request, and every member already
   * dispatched to. Built only when a second pick happens; until then `first` is the only one.
   */
  tried: Set<Target> | null
  first: Target | null
  /** The member of the latest attempt: the upstream label of a call that failed. */
  last: Target | null
  /** Attempts still running (two while a hedge races). */
  live: Attempt[]
  /** The attempt whose response the client is getting; null until the first byte is sent. */
  winner: Attempt | null
  hedgeTimer: NodeJS.Timeout | null
  finished: boolean
  status: number
  lastChunk: Buffer | null
  prevChunk: Buffer | null
  lastFailure: ClassifiedFailure | null
  readonly cache: CallCache | null

  constructor(
    ctx: CallContext,
    res: ServerResponse,
    endpoint: Endpoint,
    model: string,
    resolution: Resolution<Upstream>,
    route: RouteRequest,
    body: Buffer,
    requestHeaders: readonly string[] | null,
    startedAt: number,
    /** Members this request must never use (peers, for a request another gateway forwarded). */
    excluded: Set<Target> | null = null,
    cache: CallCache | null = null,
  ) {
    this.ctx = ctx
    this.res = res
    this.endpoint = endpoint
    this.model = model
    this.resolution = resolution
    this.route = route
    this.body = body
    this.requestHeaders = requestHeaders
    this.startedAt = startedAt
    this.deadlineAt = 0
    this.attempts = 0
    this.tried = excluded
    this.first = null
    this.last = null
    this.live = []
    this.winner = null
    this.hedgeTimer = null
    this.finished = false
    this.status = 0
    this.lastChunk = null
    this.prevChunk = null
    this.lastFailure = null
    this.cache = cache
  }

  start(): void {
    ;(this.res as ResponseWithCall)[kCall] = this
    this.res.on('close', onClientClose)
    this.ctx.inflight.add(this)
    this.ctx.track(1)
    const now = performance.now()
    const router = this.ctx.router
    router.retry.budget.recordRequest(now)
    const verdict = router.admit(this.resolution, this.route, now)
    if (verdict === 'admit') this.startAdmitted(now)
    else if (verdict === 'shed') this.shed(now)
    else router.hold(this.resolution, (admitted) => this.onHoldEnd(admitted), this.route)
  }

  private onHoldEnd(admitted: boolean): void {
    if (this.finished) return
    const now = performance.now()
    if (admitted) this.startAdmitted(now)
    else this.shed(now)
  }

  private shed(now: number): void {
    const retryAfter = this.resolution.group.admission?.config.retryAfterSeconds ?? 1
    this.respondError(new GatewayError('GW_ERR_UPSTREAMS_SATURATED', this.model, { retryAfter }), now)
  }

  private startAdmitted(now: number): void {
    const router = this.ctx.router
    const target = router.pick(this.resolution, this.route.key, this.tried, now, this.route)
    if (target === null) {
      this.respondError(new GatewayError('GW_ERR_NO_HEALTHY_UPSTREAM', this.model, { retryAfter: 1 }), now)
      return
    }
    this.dispatch(target, now)
    const hedgeMs = this.resolution.hedge.delayMs(now)
    if (hedgeMs !== null && router.retry.maxAttempts > 1) {
      this.hedgeTimer = setTimeout(onHedgeTimer, hedgeMs, this)
    }
  }

  /**
   * A semantic lookup racing the upstream: a hit that lands before the upstream's first byte
   * answers the client and cancels the upstream request; otherwise it is dropped.
   */
  raceSemantic(lookup: Promise<SemanticResult | null>): void {
    lookup.then(
      (hit) => {
        const cache = this.cache
        if (hit === null || cache === null || this.finished || this.winner !== null) return
        const now = performance.now()
        this.cancelLive(now)
        this.status = 200
        cache.cache.replay(hit.response, cache.plan, this.res, {})
        this.finish(now)
      },
      () => undefined,
    )
  }

  private dispatch(target: Target, now: number): void {
    this.attempts++
    this.last = target
    if (this.tried !== null) this.tried.add(target)
    else this.first = target
    const upstream = target.dispatcher
    if (this.deadlineAt === 0 && upstream.config.timeouts.totalMs > 0) this.deadlineAt = this.startedAt + upstream.config.timeouts.totalMs
    const attempt = new Attempt(this, target, now)
    this.live.push(attempt)
    target.onStart(now)
    this.ctx.observeConcurrency(target)
    upstream.pool.dispatch(
      {
        path: upstream.basePath + this.endpoint.path,
        method: 'POST',
        headers: this.requestHeaders === null ? (upstream.postHeaders as string[]) : upstream.headersWith(this.requestHeaders),
        body: this.body,
      },
      attempt,
    )
  }

  private exclusions(): Set<Target> {
    if (this.tried === null) {
      this.tried = new Set()
      if (this.first !== null) this.tried.add(this.first)
    }
    return this.tried
  }

  isLive(attempt: Attempt): boolean {
    const live = this.live
    return live.length === 1 ? live[0] === attempt : live.includes(attempt)
  }

  private drop(attempt: Attempt): void {
    const i = this.live.indexOf(attempt)
    if (i !== -1) this.live.splice(i, 1)
  }

  /**
   * After a failed attempt, when nothing reached the client: another member, or the same one for
   * a connection-level failure (a fresh connection usually works where a stale pooled one was
   * reset). Spends the retry budget only when a retry is really sent.
   */
  private failover(kind: FailureKind, now: number): boolean {
    const router = this.ctx.router
    if (this.finished || this.winner !== null || this.attempts >= router.retry.maxAttempts || !router.retry.retryable(kind)) return false
    if (this.deadlineAt !== 0 && now >= this.deadlineAt) return false
    let target = router.pick(this.resolution, this.route.key, this.exclusions(), now, this.route)
    if (target === null && (kind === 'reset' || kind === 'connect')) target = router.pick(this.resolution, this.route.key, null, now, this.route)
    if (target === null || !router.retry.budget.tryRetry(now)) return false
    this.ctx.metrics.countRetry(target.upstreamName, kind)
    this.dispatch(target, now)
    return true
  }

  /** The hedge delay passed with no byte for the client yet: race a second attempt on another member. */
  hedge(): void {
    this.hedgeTimer = null
    if (this.finished || this.winner !== null || this.live.length !== 1) return
    const now = performance.now()
    const router = this.ctx.router
    if (this.attempts >= router.retry.maxAttempts) return
    const target = router.pick(this.resolution, this.route.key, this.exclusions(), now, this.route)
    if (target === null || !router.retry.budget.tryRetry(now)) return
    this.ctx.metrics.countHedge('sent')
    this.dispatch(target, now)
  }

  /** An attempt failed before its response reached the client. Returns true when the call goes on. */
  private attemptFailed(attempt: Attempt, kind: FailureKind, now: number): boolean {
    this.drop(attempt)
    if (this.live.length > 0) return true // a hedge is still racing
    return this.failover(kind, now)
  }

  /**
   * Upstream answered with a status: go on, fail over when retryable, hold an error to pass
   * through, or refuse it. A redirect is never passed on: its Location may be an internal address,
   * and an inference server has no business redirecting an API call.
   */
  onStatus(attempt: Attempt, status: number): 'go' | 'hold' | 'abort' {
    const redirect = status >= 300 && status < 400
    if (!redirect && status !== 429 && status < 500) return 'go'
    const now = performance.now()
    const kind: FailureKind = status === 429 ? '429' : '5xx'
    attempt.settle(kind, now)
    if (this.attemptFailed(attempt, kind, now)) return 'abort'
    if (redirect) {
      this.respondError(new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', `a redirect (${status})`), now)
      return 'abort'
    }
    // Last chance: keep the body so the client gets the upstream's own status and message.
    this.live.push(attempt)
    return 'hold'
  }

  /** An error answer grew past what is worth holding: send what came so far and stream the rest. */
  releaseHeld(attempt: Attempt, held: HeldError): void {
    this.commit(attempt, held.status, held.headers, performance.now())
    for (const chunk of held.chunks) this.write(chunk)
  }

  /**
   * A response (stream or not) that ended or broke before its first body byte reached the client.
   * Returns true when another attempt takes over.
   */
  noFirstEvent(attempt: Attempt): boolean {
    const now = performance.now()
    attempt.settle('5xx', now)
    if (this.attemptFailed(attempt, '5xx', now)) return true
    this.respondError(new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', 'the stream ended before its first event'), now)
    return false
  }

  /** The attempt's first byte for the client: it wins, every other attempt is cancelled. */
  commit(attempt: Attempt, status: number, headers: Headers, now: number): void {
    this.winner = attempt
    this.status = status
    attempt.firstByteAt = now
    if (this.live.length > 1) {
      const others = this.live
      this.live = [attempt]
      for (const other of others) {
        if (other === attempt) continue
        other.cancel(now)
        // The later-started attempt is the hedge: it won if it is the one answering.
        this.ctx.metrics.countHedge(attempt.startedAt > other.startedAt ? 'won' : 'lost')
      }
    }
    if (this.hedgeTimer !== null) {
      clearTimeout(this.hedgeTimer)
      this.hedgeTimer = null
    }
    const res = this.res
    if (res.destroyed) return
    const sse = attempt.sse
    const out: string[] = []
    const listed = connectionListed(headers.connection)
    for (const name in headers) {
      if (HOP_BY_HOP.has(name) || (sse && SSE_OVERRIDDEN.has(name)) || (listed !== null && listed.includes(name))) continue
      const value = headers[name]
      if (value === undefined) continue
      if (typeof value === 'string') out.push(name, value)
      else for (const v of value) out.push(name, v)
    }
    out.push('x-velox-upstream', attempt.target.upstreamName)
    if (this.route.explanation !== null) out.push(ROUTE_HEADER, this.route.explanation)
    if (sse) out.push('x-accel-buffering', 'no', 'cache-control', 'no-cache')
    if (this.ctx.serverTiming) {
      const upstreamMs = now - attempt.startedAt
      const gatewayMs = now - this.startedAt - upstreamMs
      out.push('server-timing', `gw;dur=${gatewayMs.toFixed(3)}, upstream;dur=${upstreamMs.toFixed(3)}`)
    }
    if (this.ctx.shuttingDown()) out.push('connection', 'close')
    const cache = this.cache
    if (cache !== null) {
      const plan = cache.plan
      if (plan.mode === 'lookup') out.push(CACHE_STATUS_HEADER, 'miss')
      else out.push(CACHE_STATUS_HEADER, 'bypass', CACHE_REASON_HEADER, plan.reason)
      cache.semantic?.abort()
      cache.semantic = null
      cache.recorder = cache.cache.recorder(plan, status, headers)
    }
    res.writeHead(status, out)
  }

  /** Writes a body chunk; false asks the attempt to pause until the client drains. */
  write(chunk: Buffer): boolean {
    this.prevChunk = this.lastChunk
    this.lastChunk = chunk
    this.cache?.recorder?.onData(chunk)
    if (this.res.destroyed) return true
    return this.res.write(chunk)
  }

  /** The winning attempt's response is complete. */
  end(attempt: Attempt, held: HeldError | null): void {
    const now = performance.now()
    if (held !== null) {
      // An upstream error answer with no retry left: pass it through whole.
      this.commit(attempt, held.status, held.headers, now)
      const body = held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks)
      if (!this.res.destroyed) this.res.end(body)
    } else {
      attempt.settle(null, now)
      if (!this.res.destroyed) this.res.end()
      // Only a response the client received whole is worth storing.
      const recorder = this.cache?.recorder
      if (recorder != null) {
        this.cache!.recorder = null
        if (this.res.destroyed) recorder.onAbort()
        else recorder.onEnd()
      }
    }
    this.finish(now)
  }

  /** A transport failure or timeout of an attempt. */
  fail(attempt: Attempt, err: unknown): void {
    const now = performance.now()
    const failure = classifyUpstreamError(err, attempt.target.dispatcher.config.timeouts)
    this.lastFailure = failure
    attempt.settle(failure.kind, now)
    this.ctx.onUpstreamFailure(this, attempt.target, failure)
    if (this.winner === attempt) {
      this.drop(attempt)
      this.breakResponse(new GatewayError(failure.code === 'GW_ERR_UPSTREAM_IDLE_TIMEOUT' ? failure.code : 'GW_ERR_UPSTREAM_STREAM_BROKEN', failure.detail))
      this.finish(now)
      return
    }
    if (this.attemptFailed(attempt, failure.kind, now)) return
    this.respondError(new GatewayError(failure.code, failure.detail), now)
  }

  /** An error event as the first event of a 200 stream. Returns true when another attempt takes over. */
  streamErrorFirst(attempt: Attempt): boolean {
    const now = performance.now()
    attempt.settle('5xx', now)
    if (this.attemptFailed(attempt, '5xx', now)) return true
    this.live.push(attempt) // pass the error event through as the upstream sent it
    return false
  }

  /** Ends a response that already started: SSE gets an error event, anything else a cut connection. */
  private breakResponse(err: GatewayError): void {
    this.status = err.status
    const res = this.res
    if (res.destroyed) return
    if (this.winner?.sse === true && res.headersSent) res.end(sseErrorEvent(err))
    else res.destroy(err)
  }

  private respondError(err: GatewayError, now: number): void {
    this.status = err.status
    writeError(this.res, err, this.ctx.shuttingDown() ? { connection: 'close' } : undefined)
    this.finish(now)
  }

  private cancelLive(now: number): void {
    const live = this.live
    this.live = []
    for (const attempt of live) attempt.cancel(now)
  }

  /** The client went away: cancel the upstream request so the GPU stops generating. */
  clientClosed(): void {
    if (this.finished) return
    const now = performance.now()
    this.status = 499 // the client left before the response ended
    this.cancelLive(now)
    this.finish(now)
  }

  /**
   * A stream that sent its headers but no first event within the first-byte timeout: treat it as
   * a timeout of that attempt (undici's own header timeout covers the no-headers case).
   */
  checkFirstByte(now: number): void {
    for (const attempt of this.live) {
      if (attempt.heldHeaders === null) continue
      const limit = attempt.target.dispatcher.config.timeouts.firstByteMs
      if (now - attempt.startedAt < limit) continue
      this.fail(attempt, Object.assign(new Error(`no first event within ${limit} ms`), { code: 'UND_ERR_HEADERS_TIMEOUT' }))
      attempt.abandon()
      return
    }
  }

  /** The total deadline passed (checked by the in-flight sweeper). */
  expire(): void {
    this.abort(new GatewayError('GW_ERR_UPSTREAM_TOTAL_TIMEOUT', String(Math.round(this.deadlineAt - this.startedAt))))
  }

  /** Stops the call with a gateway error: as the response if none started, else as its visible end. */
  abort(err: GatewayError): void {
    if (this.finished) return
    const now = performance.now()
    const committed = this.winner !== null
    this.cancelLive(now)
    if (committed) {
      this.breakResponse(err)
      this.finish(now)
    } else {
      this.respondError(err, now)
    }
  }

  private finish(now: number): void {
    if (this.finished) return
    this.finished = true
    const cache = this.cache
    if (cache !== null) {
      cache.semantic?.abort()
      cache.semantic = null
      cache.recorder?.onAbort() // still set: the response did not complete
      cache.recorder = null
    }
    if (this.hedgeTimer !== null) clearTimeout(this.hedgeTimer)
    this.hedgeTimer = null
    this.ctx.inflight.delete(this)
    this.ctx.track(-1)
    ;(this.res as ResponseWithCall)[kCall] = undefined
    this.res.off('close', onClientClose)
    const m = this.ctx.metrics
    const route = this.endpoint.name
    const winner = this.winner
    const upstreamName = winner?.target.upstreamName ?? this.last?.upstreamName ?? 'none'
    m.countRequest(route, this.model, upstreamName, this.status)
    m.observeDuration(route, (now - this.startedAt) / 1000)
    if (winner !== null && winner.firstByteAt > 0) {
      const upstreamMs = winner.firstByteAt - winner.startedAt
      m.observeFirstByte(upstreamName, upstreamMs / 1000)
      m.observeAdded(route, (winner.firstByteAt - this.startedAt - upstreamMs) / 1000)
    }
    if (this.status === 200) {
      const usage = readUsage(this.lastChunk, this.prevChunk)
      if (usage !== null) m.countTokens(this.model, usage.prompt, usage.completion)
    }
    this.live = []
    this.lastChunk = null
    this.prevChunk = null
  }
}

/** undici's handler for one dispatch of a call. */
export class Attempt implements Dispatcher.DispatchHandler {
  readonly call: ProxyCall
  readonly target: Target
  readonly startedAt: number
  firstByteAt: number
  controller: Dispatcher.DispatchController | null
  sse: boolean
  /**
   * Response headers, held until the first body byte (a stream's first event), so a response
   * that breaks or stalls before it can still fail over.
   */
  heldStatus: number
  heldHeaders: Headers | null
  /** An upstream error answer kept to pass through when no retry is left. */
  heldError: HeldError | null
  /** The member was told how this attempt ended (exactly once). */
  settled: boolean
  cancelled: boolean

  constructor(call: ProxyCall, target: Target, now: number) {
    this.call = call
    this.target = target
    this.startedAt = now
    this.firstByteAt = 0
    this.controller = null
    this.sse = false
    this.heldStatus = 0
    this.heldHeaders = null
    this.heldError = null
    this.settled = false
    this.cancelled = false
  }

  /** Tells the member how the attempt ended: a failure kind, or null for success. */
  settle(kind: FailureKind | null, now: number): void {
    if (this.settled) return
    this.settled = true
    if (kind === null) this.target.onSuccess(now)
    else this.target.onFailure(kind, now, now - this.startedAt)
  }

  /** Aborts the dispatch for a reason that says nothing about the member. */
  cancel(now: number): void {
    if (!this.settled) {
      this.settled = true
      this.target.onCancel(now)
    }
    this.abandon()
  }

  /**
   * Stops the dispatch of an attempt the call no longer follows (already settled, or replaced).
   * Marked first: undici may call back synchronously from abort, and those callbacks are ignored.
   */
  abandon(): void {
    this.cancelled = true
    this.controller?.abort(CANCELLED)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.cancelled) controller.abort(CANCELLED)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Headers): void {
    const call = this.call
    if (this.cancelled || !call.isLive(this)) return controller.abort(CANCELLED)
    if (statusCode < 200) return
    const now = performance.now()
    const ttfb = now - this.startedAt
    this.target.onFirstByte(ttfb, now)
    call.resolution.hedge.record(ttfb, now)
    const verdict = call.onStatus(this, statusCode)
    if (verdict === 'abort') return this.abandon()
    if (verdict === 'hold') {
      this.heldError = { status: statusCode, headers, chunks: [], bytes: 0 }
      return
    }
    const contentType = headers['content-type']
    this.sse = typeof contentType === 'string' && contentType.startsWith('text/event-stream')
    this.heldStatus = statusCode
    this.heldHeaders = headers
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const call = this.call
    if (this.cancelled || !call.isLive(this)) return
    const held = this.heldError
    if (held !== null) {
      held.chunks.push(chunk)
      held.bytes += chunk.length
      if (held.bytes <= MAX_HELD_ERROR_BYTES) return
      this.heldError = null
      call.releaseHeld(this, held)
      return
    }
    if (this.heldHeaders !== null) {
      const headers = this.heldHeaders
      this.heldHeaders = null
      if (this.sse && chunk.subarray(0, SSE_ERROR_PREFIX.length).equals(SSE_ERROR_PREFIX) && call.streamErrorFirst(this)) return this.abandon()
      call.commit(this, this.heldStatus, headers, performance.now())
    }
    if (!call.write(chunk)) {
      controller.pause()
      call.res.once('drain', () => controller.resume())
    }
  }

  onResponseEnd(): void {
    const call = this.call
    if (this.cancelled || !call.isLive(this)) return
    if (this.heldHeaders !== null) {
      const headers = this.heldHeaders
      this.heldHeaders = null
      // A stream that ends with no event at all is no answer; an empty plain body (204) is one.
      if (this.sse) {
        call.noFirstEvent(this)
        return
      }
      call.commit(this, this.heldStatus, headers, performance.now())
    }
    call.end(this, this.heldError)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.cancelled || !this.call.isLive(this)) return
    this.call.fail(this, err)
  }
}
