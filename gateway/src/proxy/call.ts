/**
 * One proxied request: picks an upstream, dispatches the original bytes on its pool, and streams
 * the answer straight to the client's socket chunk by chunk. Failures before the first byte
 * reaches the client fail over to another upstream within the attempt budget; failures after it
 * end the response visibly (an SSE error event, or a cut connection), never as a silent success.
 *
 * An Attempt is undici's handler for one dispatch; the call outlives its attempts, and callbacks
 * from an attempt that is no longer current (aborted for failover) are ignored.
 */
import type { ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { GatewayError } from '../errors.ts'
import type { Upstream } from '../upstream/upstream.ts'
import type { GatewayMetrics } from '../telemetry/metrics.ts'
import { readUsage } from '../telemetry/usage.ts'
import type { Endpoint } from './endpoints.ts'
import { writeError, sseErrorEvent } from './respond.ts'
import { classifyUpstreamError, type ClassifiedFailure, type FailureKind } from './upstream-errors.ts'

/** A routable member as the request path sees it (implemented by the router's members). */
export interface Target {
  readonly name: string
  readonly dispatcher: Upstream
  onStart(nowMs: number): void
  onFirstByte(latencyMs: number, nowMs: number): void
  onSuccess(nowMs: number): void
  onFailure(kind: FailureKind, nowMs: number): void
}

/** Chooses the next member for a call; `exclude` holds the members already tried. */
export interface TargetPicker {
  pick(key: string | null, exclude: ReadonlySet<Target> | null, nowMs: number): Target | null
}

export interface RetryPolicy {
  /** Attempts per request, the first included. */
  readonly maxAttempts: number
  readonly retryOn: ReadonlySet<FailureKind | '429' | '5xx'>
  /** Global budget check: may this request spend a retry now? Records the retry when it says yes. */
  tryAcquireRetry(nowMs: number): boolean
}

/** What every call of one runtime snapshot shares; built once per snapshot. */
export interface CallContext {
  readonly metrics: GatewayMetrics
  readonly serverTiming: boolean
  readonly retry: RetryPolicy
  readonly onUpstreamFailure: (call: ProxyCall, target: Target, failure: ClassifiedFailure) => void
  readonly inflight: Set<ProxyCall>
  /** True once shutdown began: responses ask clients to close their connection. */
  shuttingDown: () => boolean
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
])
/** Set by the gateway itself on every stream, whatever the upstream said. */
const SSE_OVERRIDDEN = new Set(['x-accel-buffering', 'cache-control', 'content-length'])
const SSE_ERROR_PREFIX = Buffer.from('data: {"error"')
const kCall = Symbol('velox.proxyCall')

interface ResponseWithCall extends ServerResponse {
  [kCall]?: ProxyCall
}

function onClientClose(this: ResponseWithCall): void {
  const call = this[kCall]
  if (call !== undefined) call.clientClosed()
}

export class ProxyCall {
  readonly ctx: CallContext
  readonly res: ServerResponse
  readonly endpoint: Endpoint
  readonly model: string
  readonly picker: TargetPicker
  /** Affinity key for consistent hashing (session header or `user`), or null. */
  readonly key: string | null
  readonly body: Buffer
  readonly requestHeaders: readonly string[] | null
  readonly startedAt: number
  /** Absolute deadline (performance.now() ms) for the whole call; 0 = none. */
  deadlineAt: number
  attempts: number
  tried: Set<Target> | null
  current: Attempt | null
  target: Target | null
  committed: boolean
  finished: boolean
  status: number
  sse: boolean
  dispatchedAt: number
  firstByteAt: number
  lastChunk: Buffer | null
  prevChunk: Buffer | null
  lastFailure: ClassifiedFailure | null
  /** An upstream error response held back while a retry is considered. */
  heldError: { status: number; headers: Record<string, string | string[] | undefined>; chunks: Buffer[] } | null

  constructor(
    ctx: CallContext,
    res: ServerResponse,
    endpoint: Endpoint,
    model: string,
    picker: TargetPicker,
    key: string | null,
    body: Buffer,
    requestHeaders: readonly string[] | null,
    startedAt: number,
  ) {
    this.ctx = ctx
    this.res = res
    this.endpoint = endpoint
    this.model = model
    this.picker = picker
    this.key = key
    this.body = body
    this.requestHeaders = requestHeaders
    this.startedAt = startedAt
    this.deadlineAt = 0
    this.attempts = 0
    this.tried = null
    this.current = null
    this.target = null
    this.committed = false
    this.finished = false
    this.status = 0
    this.sse = false
    this.dispatchedAt = 0
    this.firstByteAt = 0
    this.lastChunk = null
    this.prevChunk = null
    this.lastFailure = null
    this.heldError = null
  }

  start(): void {
    ;(this.res as ResponseWithCall)[kCall] = this
    this.res.on('close', onClientClose)
    this.ctx.inflight.add(this)
    this.next(performance.now())
  }

  /** Dispatches the first attempt, or answers 503 when no member can take it. */
  private next(now: number): void {
    const target = this.picker.pick(this.key, null, now)
    if (target === null) {
      this.exhausted()
      return
    }
    this.dispatch(target, now)
  }

  private dispatch(target: Target, now: number): void {
    this.attempts++
    this.target = target
    if (this.deadlineAt === 0) {
      const totalMs = target.dispatcher.config.timeouts.totalMs
      if (totalMs > 0) this.deadlineAt = this.startedAt + totalMs
    }
    const attempt = new Attempt(this, target)
    this.current = attempt
    const upstream = target.dispatcher
    this.dispatchedAt = now
    target.onStart(now)
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

  /**
   * Replaces a failed attempt with one on another member, when policy and budget allow and a
   * member is left. A connection-level failure may retry the same member (a fresh connection
   * usually succeeds where a stale pooled one was reset). Returns false to keep the failure.
   */
  private failover(failed: Target, kind: FailureKind | '429' | '5xx', now: number): boolean {
    if (!this.mayRetry(kind, now)) return false
    if (this.tried === null) this.tried = new Set()
    this.tried.add(failed)
    let target = this.picker.pick(this.key, this.tried, now)
    if (target === null && (kind === 'reset' || kind === 'connect')) target = this.picker.pick(this.key, null, now)
    // The global budget is spent only when a retry will really be sent.
    if (target === null || !this.ctx.retry.tryAcquireRetry(now)) return false
    this.current = null
    this.dispatch(target, now)
    return true
  }

  /** Can a failed attempt be replaced by another one? Only while nothing reached the client. */
  private mayRetry(kind: FailureKind | '429' | '5xx', now: number): boolean {
    return (
      !this.committed &&
      !this.finished &&
      this.attempts < this.ctx.retry.maxAttempts &&
      this.ctx.retry.retryOn.has(kind) &&
      (this.deadlineAt === 0 || now < this.deadlineAt)
    )
  }

  /** Upstream answered with a status: commit it, or fail over when it is retryable. */
  onStatus(attempt: Attempt, status: number, headers: Record<string, string | string[] | undefined>): 'commit' | 'hold' | 'abort' {
    const now = performance.now()
    if (status === 429 || status >= 500) {
      const kind = status === 429 ? '429' : '5xx'
      attempt.target.onFailure('status', now)
      if (this.failover(attempt.target, kind, now)) return 'abort'
      // Keep the error body whole, so the client gets the upstream's own status and message.
      this.heldError = { status, headers, chunks: [] }
      return 'hold'
    }
    return 'commit'
  }

  /** Sends response headers to the client (once). */
  commit(attempt: Attempt, status: number, headers: Record<string, string | string[] | undefined>, now: number): void {
    this.committed = true
    this.status = status
    this.firstByteAt = now
    const res = this.res
    if (res.destroyed) return
    const out: string[] = []
    const sse = this.sse
    for (const name in headers) {
      if (HOP_BY_HOP.has(name) || (sse && SSE_OVERRIDDEN.has(name))) continue
      const value = headers[name]
      if (value === undefined) continue
      if (typeof value === 'string') out.push(name, value)
      else for (const v of value) out.push(name, v)
    }
    out.push('x-velox-upstream', attempt.target.name)
    if (sse) out.push('x-accel-buffering', 'no', 'cache-control', 'no-cache')
    if (this.ctx.serverTiming) {
      const upstreamMs = now - this.dispatchedAt
      const gatewayMs = now - this.startedAt - upstreamMs
      out.push('server-timing', `gw;dur=${gatewayMs.toFixed(3)}, upstream;dur=${upstreamMs.toFixed(3)}`)
    }
    if (this.ctx.shuttingDown()) out.push('connection', 'close')
    res.writeHead(status, out)
  }

  /** Writes a body chunk; false asks the attempt to pause until the client drains. */
  write(chunk: Buffer): boolean {
    this.prevChunk = this.lastChunk
    this.lastChunk = chunk
    if (this.res.destroyed) return true
    return this.res.write(chunk)
  }

  end(attempt: Attempt): void {
    const now = performance.now()
    attempt.target.onSuccess(now)
    if (this.heldError !== null) {
      this.flushHeldError(attempt, now)
      return
    }
    if (!this.res.destroyed) this.res.end()
    this.finish(now)
  }

  private flushHeldError(attempt: Attempt, now: number): void {
    const held = this.heldError!
    this.heldError = null
    this.commit(attempt, held.status, held.headers, now)
    const body = held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks)
    if (!this.res.destroyed) this.res.end(body)
    this.lastChunk = body
    this.finish(now)
  }

  /** A transport failure or timeout of the current attempt. */
  fail(attempt: Attempt, err: unknown): void {
    const now = performance.now()
    const failure = classifyUpstreamError(err, attempt.target.dispatcher.config.timeouts)
    this.lastFailure = failure
    attempt.target.onFailure(failure.kind, now)
    this.ctx.onUpstreamFailure(this, attempt.target, failure)
    if (!this.committed) {
      this.heldError = null
      if (this.failover(attempt.target, failure.kind, now)) return
      this.status = this.respondError(new GatewayError(failure.code, failure.detail))
      this.finish(now)
      return
    }
    this.breakResponse(new GatewayError('GW_ERR_UPSTREAM_STREAM_BROKEN', failure.detail))
    this.finish(now)
  }

  /** An error event as the first event of a 200 stream: nothing was sent, so another upstream may answer. */
  streamErrorBeforeFirstByte(attempt: Attempt): boolean {
    const now = performance.now()
    attempt.target.onFailure('stream-error', now)
    return this.failover(attempt.target, 'stream-error', now)
  }

  /** Ends a response that already started: SSE gets an error event, anything else a cut connection. */
  private breakResponse(err: GatewayError): void {
    const res = this.res
    if (res.destroyed) return
    if (this.sse && res.headersSent) {
      res.end(sseErrorEvent(err))
    } else {
      res.destroy(err)
    }
  }

  private respondError(err: GatewayError): number {
    writeError(this.res, err, this.ctx.shuttingDown() ? { connection: 'close' } : undefined)
    return err.status
  }

  private exhausted(): void {
    const now = performance.now()
    const failure = this.lastFailure
    const err =
      this.attempts === 0
        ? new GatewayError('GW_ERR_NO_HEALTHY_UPSTREAM', this.model, { retryAfter: 1 })
        : failure !== null
          ? new GatewayError(failure.code, failure.detail)
          : new GatewayError('GW_ERR_NO_HEALTHY_UPSTREAM', this.model, { retryAfter: 1 })
    this.status = this.respondError(err)
    this.finish(now)
  }

  /** The client went away: cancel the upstream request so the GPU stops generating. */
  clientClosed(): void {
    if (this.finished) return
    const attempt = this.current
    this.current = null
    if (this.status === 0) this.status = 499
    attempt?.abort()
    this.finish(performance.now())
  }

  /** The total deadline passed (checked by the in-flight sweeper). */
  expire(): void {
    if (this.finished) return
    const attempt = this.current
    this.current = null
    const totalMs = this.target?.dispatcher.config.timeouts.totalMs ?? 0
    const err = new GatewayError('GW_ERR_UPSTREAM_TOTAL_TIMEOUT', String(totalMs))
    attempt?.abort()
    if (this.committed) this.breakResponse(err)
    else this.status = this.respondError(err)
    this.finish(performance.now())
  }

  private finish(now: number): void {
    if (this.finished) return
    this.finished = true
    this.current = null
    this.ctx.inflight.delete(this)
    ;(this.res as ResponseWithCall)[kCall] = undefined
    this.res.off('close', onClientClose)
    const m = this.ctx.metrics
    const route = this.endpoint.name
    const upstreamName = this.target?.name ?? 'none'
    m.countRequest(route, this.model, upstreamName, this.status)
    m.observeDuration(route, (now - this.startedAt) / 1000)
    if (this.firstByteAt > 0) {
      const upstreamMs = this.firstByteAt - this.dispatchedAt
      m.observeFirstByte(upstreamName, upstreamMs / 1000)
      m.observeAdded(route, (this.firstByteAt - this.startedAt - upstreamMs) / 1000)
    }
    if (this.status === 200 && this.lastChunk !== null) {
      const last = this.lastChunk
      const tail = this.prevChunk !== null && last.length < 1024 ? Buffer.concat([this.prevChunk, last]) : last
      const usage = readUsage(tail)
      if (usage !== null) m.countTokens(this.model, usage.prompt, usage.completion)
    }
    this.lastChunk = null
    this.prevChunk = null
  }
}

/** undici's handler for one dispatch of a call. */
export class Attempt implements Dispatcher.DispatchHandler {
  readonly call: ProxyCall
  readonly target: Target
  controller: Dispatcher.DispatchController | null
  /** Response headers of an SSE stream, held until its first event so a stalled or failed start can fail over. */
  heldStatus: number
  heldHeaders: Record<string, string | string[] | undefined> | null
  aborted: boolean

  constructor(call: ProxyCall, target: Target) {
    this.call = call
    this.target = target
    this.controller = null
    this.heldStatus = 0
    this.heldHeaders = null
    this.aborted = false
  }

  abort(): void {
    this.aborted = true
    this.controller?.abort(new Error('request cancelled by the gateway'))
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.aborted || this.call.current !== this) controller.abort(new Error('request cancelled by the gateway'))
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    const call = this.call
    if (call.current !== this) return controller.abort(new Error('superseded'))
    if (statusCode < 200) return
    const now = performance.now()
    this.target.onFirstByte(now - call.dispatchedAt, now)
    const verdict = call.onStatus(this, statusCode, headers)
    if (verdict === 'abort') return controller.abort(new Error('failing over'))
    if (verdict === 'hold') return
    const contentType = headers['content-type']
    if (typeof contentType === 'string' && contentType.startsWith('text/event-stream')) {
      call.sse = true
      this.heldStatus = statusCode
      this.heldHeaders = headers
      return
    }
    call.commit(this, statusCode, headers, now)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const call = this.call
    if (call.current !== this) return
    if (call.heldError !== null) {
      call.heldError.chunks.push(chunk)
      return
    }
    if (this.heldHeaders !== null) {
      if (chunk.subarray(0, SSE_ERROR_PREFIX.length).equals(SSE_ERROR_PREFIX) && call.streamErrorBeforeFirstByte(this)) {
        this.heldHeaders = null
        return controller.abort(new Error('failing over'))
      }
      const headers = this.heldHeaders
      this.heldHeaders = null
      call.commit(this, this.heldStatus, headers, performance.now())
    }
    if (!call.write(chunk)) {
      controller.pause()
      call.res.once('drain', () => controller.resume())
    }
  }

  onResponseEnd(): void {
    const call = this.call
    if (call.current !== this) return
    if (this.heldHeaders !== null) {
      const headers = this.heldHeaders
      this.heldHeaders = null
      call.commit(this, this.heldStatus, headers, performance.now())
    }
    call.end(this)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.call.current !== this) return
    this.call.fail(this, err)
  }
}
