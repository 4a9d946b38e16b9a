/**
 * One proxied request: picks a member, dispatches the original bytes on its pool, and streams the
 * answer straight to the client's socket chunk by chunk.
 *
 * Before the first byte reaches the client, nothing is final: a failed attempt (refused or reset
 * connection, timeout, 429/5xx, a stream whose first event is an error) is replaced by one on
 * another member within the attempt and budget limits (the planner decides), and an optional
 * hedge races a second attempt against a slow first one. The first attempt to produce a byte for
 * the client wins and every other is cancelled. After that, a failure ends the response visibly
 * (an SSE error event, or a cut connection), never as a silent success.
 *
 * The parts: attempt.ts (undici's handler per dispatch), planner.ts (which member next),
 * response-headers.ts (what the client's headers are), client-output.ts (where the answer is
 * written), call-cache.ts (the semantic race and the recorder), outcome.ts (what a finished call
 * records).
 */
import type { ClientResponse } from '../protocols/client-response.ts'
import type { OutgoingRequest, ProviderCall } from '../providers/index.ts'
import type { SemanticResult } from '../cache/index.ts'
import { GatewayError } from '../errors.ts'
import { ROUTE_HEADER } from '../routing/route-request.ts'
import type { FailureKind } from '../routing/config.ts'
import { Attempt, type HeldError } from './attempt.ts'
import type { CallContext, CallRequest, UpstreamMember, UpstreamHeaders } from './context.ts'
import { CallOutcome } from './outcome.ts'
import { AttemptPlanner } from './planner.ts'
import { ClientOutput } from './client-output.ts'
import { responseHeaders, serverTiming } from './response-headers.ts'
import { classifyUpstreamError } from './upstream-errors.ts'
import { REQUEST_ID_HEADER } from '../telemetry/request-id.ts'
import type { Slotted } from './in-flight.ts'

export type { CallContext, CallRequest, UpstreamMember } from './context.ts'

const kCall = Symbol('velox.proxyCall')

interface ResponseWithCall extends ClientResponse {
  [kCall]?: ProxyCall | undefined
}

function onClientClose(this: ResponseWithCall): void {
  this[kCall]?.clientClosed()
}

function onHedgeTimer(call: ProxyCall): void {
  call.hedge()
}

function onKeepAliveTimer(call: ProxyCall): void {
  call.keepAlive()
}

/** No attempt running: shared, never changed (`#addLive` replaces it). */
const NO_ATTEMPTS = Object.freeze([]) as unknown as Attempt[]

/** An SSE comment: every SSE client ignores it; every idle timer between here and the client resets. */
const KEEP_ALIVE = Buffer.from(': keep-alive\n\n')

export class ProxyCall implements Slotted {
  readonly ctx: CallContext
  readonly res: ClientResponse
  readonly request: CallRequest
  readonly #planner: AttemptPlanner
  readonly #outcome: CallOutcome
  /** Absolute deadline (performance.now() ms) for the whole call; 0 = none. */
  #deadlineAt: number
  /** Attempts still running (two while a hedge races). */
  #live: Attempt[]
  /** The attempt whose response the client is getting; null until the first byte is sent. */
  #winner: Attempt | null
  #hedgeTimer: NodeJS.Timeout | null
  #finished: boolean
  /** Where the winner's answer is written. */
  readonly #out: ClientOutput
  /** What providers of other kinds read from this call; built on first use. */
  #providerCall: ProviderCall | null
  /** Next SSE keep-alive comment while a stream waits for its first event (server.sseKeepAliveMs). */
  #keepAliveTimer: NodeJS.Timeout | null
  /** The winner's headers went out with keep-alive comments; its first event has not come yet. */
  #keptAlive: boolean
  /** Its place among the calls in flight (in-flight.ts); -1 when not there. */
  inFlightSlot: number

  constructor(ctx: CallContext, res: ClientResponse, request: CallRequest) {
    this.ctx = ctx
    this.res = res
    this.request = request
    this.#planner = new AttemptPlanner(ctx.router, request.resolution, request.affinityKey, request.excluded, request.route ?? null)
    this.#outcome = new CallOutcome()
    this.#deadlineAt = 0
    this.#live = NO_ATTEMPTS
    this.#winner = null
    this.#hedgeTimer = null
    this.#finished = false
    this.#out = new ClientOutput(res)
    this.#providerCall = null
    this.#keepAliveTimer = null
    this.#keptAlive = false
    this.inFlightSlot = -1
  }

  #forProvider(): ProviderCall {
    const r = this.request
    return (this.#providerCall ??= { endpoint: r.endpoint, body: r.body, model: r.resolution.model, clientModel: r.model, native: r.native, usageInjected: r.usageFilter !== null })
  }

  /** The model the client named. */
  get model(): string {
    return this.request.model
  }

  /** Attempts dispatched so far. */
  get attempts(): number {
    return this.#planner.attempts
  }

  /** Absolute deadline (performance.now() ms) for the whole call; 0 = none. */
  get deadlineAt(): number {
    return this.#deadlineAt
  }

  /**
   * Some attempt's response reached the client. A stream kept alive before its first event is not
   * committed yet in this sense: its first-byte deadline still applies (see keepAlive()).
   */
  get committed(): boolean {
    return this.#winner !== null && !this.#keptAlive
  }

  get finished(): boolean {
    return this.#finished
  }

  start(): void {
    ;(this.res as ResponseWithCall)[kCall] = this
    this.res.on('close', onClientClose)
    this.ctx.inFlight.add(this)
    this.ctx.track(1)
    const now = performance.now()
    // Admission from saturation (inference-aware only): go now, wait for room, or shed.
    const router = this.ctx.router
    const route = this.request.route ?? null
    const verdict = router.admit(this.request.resolution, route, now)
    if (verdict === 'admit') this.#begin(now)
    else if (verdict === 'shed') this.#shed(now)
    else router.hold(this.request.resolution, (admitted) => this.#holdEnded(admitted), route)
  }

  #holdEnded(admitted: boolean): void {
    if (this.#finished) return
    const now = performance.now()
    if (admitted) this.#begin(now)
    else this.#shed(now)
  }

  #shed(now: number): void {
    const retryAfter = this.request.resolution.group.admission?.config.retryAfterSeconds ?? 1
    this.#respondError(new GatewayError('GW_ERR_UPSTREAMS_SATURATED', this.request.model, { retryAfter }), now)
  }

  #begin(now: number): void {
    const picked = this.#planner.first(now)
    if (picked === null) {
      this.#respondError(new GatewayError('GW_ERR_NO_HEALTHY_UPSTREAM', this.request.model, { retryAfter: 1 }), now)
      return
    }
    const member = this.#withRoom(picked, now)
    if (member === null) {
      this.#respondError(new GatewayError('GW_ERR_UPSTREAM_OVERLOADED', this.request.model, { retryAfter: 1 }), now)
      return
    }
    this.#dispatch(member, now)
    const hedgeMs = this.#planner.hedgeDelay(now)
    if (hedgeMs !== null) this.#hedgeTimer = setTimeout(onHedgeTimer, hedgeMs, this)
    const cache = this.request.cache
    if (cache !== null && !this.#finished) {
      const lookup = cache.lookupSemantic()
      if (lookup !== null) this.#raceSemantic(lookup)
    }
  }

  /**
   * A semantic lookup racing the upstream: a hit that lands before the upstream's first byte
   * answers the client and cancels the upstream request; otherwise it is dropped.
   */
  #raceSemantic(lookup: Promise<SemanticResult | null>): void {
    lookup.then(
      (hit) => {
        const cache = this.request.cache
        if (hit === null || cache === null || this.#finished || this.#winner !== null) return
        const now = performance.now()
        this.#cancelLive(now)
        this.#outcome.status = 200
        this.#outcome.cache = 'semantic-hit'
        this.request.metering?.end(null, true, true)
        cache.replay(hit, this.res, { [REQUEST_ID_HEADER]: this.request.requestId })
        this.#finish(now)
      },
      () => undefined,
    )
  }

  /**
   * `member`, or another one when its connections are all busy and its queue is full (Envoy's
   * max_pending_requests overflow); null when no member has room.
   */
  #withRoom(member: UpstreamMember | null, now: number): UpstreamMember | null {
    while (member !== null && member.upstream.admission.fullFor(this.request.priority)) {
      this.ctx.metrics.countQueueRejected(member.upstreamName, 'full')
      member = this.#planner.instead(member, now)
    }
    return member
  }

  #dispatch(member: UpstreamMember, now: number): void {
    this.#planner.dispatched(member)
    const upstream = member.upstream
    const request = this.request
    if (this.#deadlineAt === 0 && upstream.config.timeouts.totalMs > 0) this.#deadlineAt = request.startedAt + upstream.config.timeouts.totalMs
    let outgoing: OutgoingRequest | null = null
    if (upstream.provider.kind !== 'openai') {
      try {
        outgoing = upstream.provider.prepare(this.#forProvider())
      } catch (err) {
        // This upstream's protocol cannot carry the request; another attempt may still be racing.
        if (this.#live.length === 0 && this.#winner === null) this.#respondError(err instanceof GatewayError ? err : new GatewayError('GW_ERR_INTERNAL', undefined, { cause: err }), now)
        return
      }
    }
    const attempt = new Attempt(this, member, now)
    attempt.outgoing = outgoing
    this.#addLive(attempt)
    member.onStart(now)
    const charge = request.route?.charge ?? 0
    if (charge > 0) {
      // The pick just made estimated this much prefill on the member: charged until the first token.
      attempt.prefill = charge
      attempt.prefillWork = member.beginPrefill(charge)
    }
    this.ctx.observeConcurrency(member)
    // Beyond the pool's connections the attempt waits here, bounded and with a deadline, never in undici.
    if (upstream.admission.admit(attempt) === 'now') this.send(attempt)
    else attempt.queuedAt = now
  }

  /** Hands an attempt that holds an admission slot to its upstream's pool. */
  send(attempt: Attempt): void {
    const upstream = attempt.member.upstream
    const request = this.request
    const outgoing = attempt.outgoing
    attempt.sent()
    let forwarded = request.forwardedHeaders
    if (request.trace !== null) {
      // The attempt's own span is the upstream's parent: traceparent (and tracestate) go with it.
      const carrier = forwarded === null ? [] : forwarded.slice()
      attempt.span = request.trace.attempt(attempt.member, request.resolution.model, this.#planner.attempts, performance.now(), carrier)
      forwarded = carrier
    }
    const path = upstream.basePath + (outgoing === null ? request.endpoint.path : outgoing.path)
    const body = outgoing === null ? request.body : outgoing.body
    if (outgoing?.headers == null) upstream.post(path, forwarded, body, attempt)
    else upstream.dispatch({ path, method: 'POST', headers: upstream.headersWith(forwarded === null ? outgoing.headers : outgoing.headers.concat(forwarded)), body }, attempt)
  }

  /** A call has one attempt almost always: its list is made for it then, and grows only for a hedge. */
  #addLive(attempt: Attempt): void {
    if (this.#live.length === 0) this.#live = [attempt]
    else this.#live.push(attempt)
  }

  isLive(attempt: Attempt): boolean {
    const live = this.#live
    return live.length === 1 ? live[0] === attempt : live.includes(attempt)
  }

  #drop(attempt: Attempt): void {
    const i = this.#live.indexOf(attempt)
    if (i !== -1) this.#live.splice(i, 1)
  }

  /** After a failed attempt, when nothing reached the client: another one, if the planner finds one. */
  #failover(kind: FailureKind, now: number): boolean {
    if (this.#finished || this.#winner !== null) return false
    const member = this.#withRoom(this.#planner.retry(kind, now, this.#deadlineAt), now)
    if (member === null) return false
    this.ctx.metrics.countRetry(member.upstreamName, kind)
    this.#dispatch(member, now)
    return true
  }

  /** The hedge delay passed with no byte for the client yet: race a second attempt on another member. */
  hedge(): void {
    this.#hedgeTimer = null
    if (this.#finished || this.#winner !== null || this.#live.length !== 1) return
    const now = performance.now()
    const member = this.#withRoom(this.#planner.hedge(now), now)
    if (member === null) return
    this.ctx.metrics.countHedge('sent')
    this.#dispatch(member, now)
  }

  /** An attempt failed before its response reached the client. Returns true when the call goes on. */
  #attemptFailed(attempt: Attempt, kind: FailureKind, now: number): boolean {
    this.#drop(attempt)
    if (this.#live.length > 0) return true // a hedge is still racing
    return this.#failover(kind, now)
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
    if (this.#attemptFailed(attempt, kind, now)) return 'abort'
    if (redirect) {
      this.#respondError(new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', `a redirect (${status})`), now)
      return 'abort'
    }
    // Last chance: keep the body so the client gets the upstream's own status and message.
    this.#addLive(attempt)
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
    if (this.#attemptFailed(attempt, '5xx', now)) return true
    this.#respondError(new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', 'the stream ended before its first event'), now)
    return false
  }

  /**
   * An upstream accepted a stream (200, text/event-stream) and the gateway holds its headers until
   * the first event. With `server.sseKeepAliveMs`, a timer sends keep-alive comments once the
   * client has waited that long since its request.
   */
  awaitFirstEvent(): void {
    const delay = this.ctx.sseKeepAliveMs ?? 0
    if (delay <= 0 || this.#keepAliveTimer !== null || this.#finished) return
    const due = this.request.startedAt + delay - performance.now()
    this.#keepAliveTimer = setTimeout(onKeepAliveTimer, due > 0 ? due : 0, this)
  }

  /**
   * The client has waited `sseKeepAliveMs` and a stream's first event has not come: send its
   * headers now and an SSE comment, again every `sseKeepAliveMs`, so load balancers with idle
   * timeouts keep the connection through a long prefill. This ends failover: the response is
   * committed to this attempt (a racing hedge is cancelled), and a failure before its first event
   * (an error event first, an empty stream, the first-byte timeout) now ends the stream with an
   * SSE error event instead of moving to another member.
   */
  keepAlive(): void {
    this.#keepAliveTimer = null
    if (this.#finished) return
    let attempt = this.#winner
    if (attempt === null) {
      for (const a of this.#live) if (a.sse && a.awaitingFirstByte) attempt = a
      // No accepted stream waiting (it failed over, or is not back yet): the next one re-arms.
      if (attempt === null) return
      this.#keptAlive = true
      this.#take(attempt, performance.now())
    } else if (!this.#keptAlive) return
    // Straight to the client: a translation in front (another provider's protocol) would drop a comment.
    if (!this.#out.writeRaw(KEEP_ALIVE)) return
    this.#keepAliveTimer = setTimeout(onKeepAliveTimer, this.ctx.sseKeepAliveMs!, this)
  }

  /** The attempt's first byte for the client: it wins, every other attempt is cancelled. */
  commit(attempt: Attempt, status: number, headers: UpstreamHeaders, now: number): void {
    if (this.#keepAliveTimer !== null) {
      clearTimeout(this.#keepAliveTimer)
      this.#keepAliveTimer = null
    }
    if (this.#keptAlive && this.#winner === attempt) {
      // Its headers already went out with the keep-alive comments: this is the first event.
      this.#keptAlive = false
      attempt.won(now)
      if (attempt.sse) this.request.trace?.firstToken(now, now - this.request.startedAt)
      return
    }
    attempt.won(now)
    this.#take(attempt, now, status, headers)
    if (attempt.sse) this.request.trace?.firstToken(now, now - this.request.startedAt)
  }

  /** `attempt` becomes the client's response: every other attempt is cancelled, its headers go out. */
  #take(attempt: Attempt, now: number, status: number = attempt.heldStatus, headers: UpstreamHeaders = attempt.heldHeaders!): void {
    this.#winner = attempt
    this.#outcome.status = status
    const trace = this.request.trace
    if (trace !== null) {
      this.#outcome.capture = trace.outputCapture(attempt.sse)
      this.#outcome.keepFirstChunk = trace.recording
    }
    if (this.#live.length > 1) {
      const others = this.#live
      this.#live = [attempt]
      for (const other of others) {
        if (other === attempt) continue
        other.cancel(now)
        // The later-started attempt is the hedge: it won if it is the one answering.
        this.ctx.metrics.countHedge(attempt.startedAt > other.startedAt ? 'won' : 'lost')
      }
    }
    if (this.#hedgeTimer !== null) {
      clearTimeout(this.#hedgeTimer)
      this.#hedgeTimer = null
    }
    const provider = attempt.member.upstream.provider
    const translated = provider.kind === 'openai' ? null : provider.respond(this.res, this.#forProvider())
    if (translated !== null) this.#out.through(translated)
    // No other attempt follows a winner (failover and hedging stop here): the body can go.
    this.request.release()
    if (this.#out.gone) return
    const out = responseHeaders(headers, attempt.sse, attempt.member.upstreamName)
    const explanation = this.request.route?.explanation ?? null
    if (explanation !== null) out.push(ROUTE_HEADER, explanation)
    if (this.ctx.serverTiming) {
      const upstreamMs = now - attempt.startedAt
      out.push('server-timing', serverTiming(now - this.request.startedAt - upstreamMs, upstreamMs))
    }
    out.push(REQUEST_ID_HEADER, this.request.requestId)
    if (this.ctx.shuttingDown()) out.push('connection', 'close')
    if (translated === null) this.request.cache?.committed(status, headers, out)
    else this.request.cache?.committedUncached(out)
    this.#out.head(status, out)
  }

  /**
   * Writes a body chunk; false asks the attempt to pause until the client drains. `ending`: the
   * upstream's end came in the same read, and `end` follows at once.
   */
  write(chunk: Buffer, ending = false): boolean {
    this.#outcome.sawChunk(chunk)
    this.request.cache?.onData(chunk)
    if (this.#out.gone) return true
    const filter = this.request.usageFilter
    const bytes = filter === null ? chunk : filter.filter(chunk)
    return bytes.length === 0 || this.#out.write(bytes, ending)
  }

  /** Calls `resume` once the client has taken what `write` could not pass on at once. */
  whenDrained(resume: () => void): void {
    this.#out.whenDrained(resume)
  }

  /** The winning attempt's response is complete. */
  end(attempt: Attempt, held: HeldError | null): void {
    const now = performance.now()
    if (held !== null) {
      // An upstream error answer with no retry left: pass it through whole.
      this.commit(attempt, held.status, held.headers, now)
      this.#out.end(held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks))
    } else {
      attempt.settle(null, now)
      this.#out.end(this.request.usageFilter?.flush())
      this.request.cache?.ended(!this.res.destroyed)
    }
    this.#finish(now)
  }

  /** A transport failure or timeout of an attempt. */
  fail(attempt: Attempt, err: unknown): void {
    const now = performance.now()
    const failure = classifyUpstreamError(err, attempt.member.upstream.config.timeouts)
    attempt.settle(failure.kind, now)
    this.ctx.onUpstreamFailure(this, attempt.member, failure)
    if (this.#winner === attempt) {
      this.#drop(attempt)
      // Kept alive before its first event: the upstream's own failure (a timeout, a reset) is the news.
      const code = this.#keptAlive || failure.code === 'GW_ERR_UPSTREAM_IDLE_TIMEOUT' ? failure.code : 'GW_ERR_UPSTREAM_STREAM_BROKEN'
      this.#breakResponse(new GatewayError(code, failure.detail))
      this.#finish(now)
      return
    }
    if (this.#attemptFailed(attempt, failure.kind, now)) return
    this.#respondError(new GatewayError(failure.code, failure.detail), now)
  }

  /** An error event as the first event of a 200 stream. Returns true when another attempt takes over. */
  streamErrorFirst(attempt: Attempt, kind: FailureKind = '5xx'): boolean {
    const now = performance.now()
    attempt.settle(kind, now)
    if (this.#attemptFailed(attempt, kind, now)) return true
    this.#addLive(attempt) // pass the error event through as the upstream sent it
    return false
  }

  /** Ends a response that already started: SSE gets an error event, anything else a cut connection. */
  #breakResponse(err: GatewayError): void {
    this.#outcome.error = err.code
    const res = this.res
    // The client already has its status (a 200): that is what it saw; the failure counts apart.
    if (res.headersSent) this.#outcome.broken = err.code
    else this.#outcome.status = err.status
    this.#out.break(err, this.#winner?.sse === true, this.request.endpoint.name)
  }

  #respondError(err: GatewayError, now: number): void {
    if (this.res.headersSent) {
      // Keep-alive comments already sent the stream's headers: the error ends the stream instead.
      this.#breakResponse(err)
      this.#finish(now)
      return
    }
    this.#outcome.status = err.status
    this.#outcome.error = err.code
    const id = this.request.requestId
    this.#out.error(err, this.ctx.shuttingDown() ? { [REQUEST_ID_HEADER]: id, connection: 'close' } : { [REQUEST_ID_HEADER]: id })
    this.#finish(now)
  }

  #cancelLive(now: number): void {
    const live = this.#live
    this.#live = NO_ATTEMPTS
    for (const attempt of live) attempt.cancel(now)
  }

  /** The client went away: cancel the upstream request so the GPU stops generating. */
  clientClosed(): void {
    if (this.#finished) return
    const now = performance.now()
    this.#outcome.status = 499 // the client left before the response ended
    this.#cancelLive(now)
    this.#finish(now)
  }

  /**
   * A stream that sent its headers but no first event within the first-byte timeout: treat it as
   * a timeout of that attempt (undici's own header timeout covers the no-headers case).
   */
  checkFirstByte(now: number): void {
    for (const attempt of this.#live) {
      if (!attempt.awaitingFirstByte) continue
      const limit = attempt.member.upstream.config.timeouts.firstByteMs
      if (now - attempt.startedAt < limit) continue
      this.fail(attempt, Object.assign(new Error(`no first event within ${limit} ms`), { code: 'UND_ERR_HEADERS_TIMEOUT' }))
      attempt.abandon()
      return
    }
  }

  /**
   * An attempt that waited longer than its upstream's `pool.queueTimeoutMs` for a connection: it
   * leaves the queue and the call moves to a member with room, or answers 503 with Retry-After.
   */
  checkQueue(now: number): void {
    for (const attempt of this.#live) {
      if (attempt.queuedAt === 0) continue
      const upstream = attempt.member.upstream
      if (now - attempt.queuedAt < upstream.admission.queueTimeoutMs) continue
      this.#leftQueue(attempt, 'timeout', now)
      return
    }
  }

  /** A more important request took this attempt's place in its upstream's queue. */
  queueShed(attempt: Attempt): void {
    if (this.#finished || !this.isLive(attempt)) return
    this.#leftQueue(attempt, 'preempted', performance.now())
  }

  /** A queued attempt that stopped waiting: the call moves to a member with room, or answers 503 with Retry-After. */
  #leftQueue(attempt: Attempt, reason: 'timeout' | 'preempted', now: number): void {
    this.ctx.metrics.countQueueRejected(attempt.member.upstreamName, reason)
    attempt.cancel(now)
    this.#drop(attempt)
    if (this.#live.length > 0) return // a hedge is still running
    const next = this.#withRoom(this.#planner.instead(attempt.member, now), now)
    if (next !== null) this.#dispatch(next, now)
    else this.#respondError(new GatewayError('GW_ERR_UPSTREAM_OVERLOADED', this.request.model, { retryAfter: 1 }), now)
  }

  /** The total deadline passed (checked by the in-flight sweeper). */
  expire(): void {
    this.abort(new GatewayError('GW_ERR_UPSTREAM_TOTAL_TIMEOUT', String(Math.round(this.#deadlineAt - this.request.startedAt))))
  }

  /** Stops the call with a gateway error: as the response if none started, else as its visible end. */
  abort(err: GatewayError): void {
    if (this.#finished) return
    const now = performance.now()
    const committed = this.#winner !== null
    this.#cancelLive(now)
    if (committed) {
      this.#breakResponse(err)
      this.#finish(now)
    } else {
      this.#respondError(err, now)
    }
  }

  #finish(now: number): void {
    if (this.#finished) return
    this.#finished = true
    this.request.cache?.close()
    if (this.#hedgeTimer !== null) clearTimeout(this.#hedgeTimer)
    this.#hedgeTimer = null
    if (this.#keepAliveTimer !== null) clearTimeout(this.#keepAliveTimer)
    this.#keepAliveTimer = null
    this.ctx.inFlight.delete(this)
    this.ctx.track(-1)
    ;(this.res as ResponseWithCall)[kCall] = undefined
    this.res.off('close', onClientClose)
    const request = this.request
    this.#outcome.record(this.ctx.metrics, request.endpoint.name, request.model, request.startedAt, this.#winner, this.#planner.last, now, request.metering)
    this.#outcome.report(this.ctx, request, this.attempts, this.#winner, this.#planner.last, now)
    this.#live = NO_ATTEMPTS
  }
}
