/**
 * The request pipeline behind every POST endpoint: read the body once, authenticate and
 * authorize, resolve the model, answer from the cache when it can, else forward the original
 * bytes through a ProxyCall.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { CachedResponse, ResponseCache } from '../cache/index.ts'
import type { Principal } from '../auth/authenticator.ts'
import { GatewayError } from '../errors.ts'
import { estimateCost } from '../limits/estimate.ts'
import { Metering } from '../limits/metering.ts'
import { askForStreamUsage, needsStreamUsage, UsageEventFilter } from '../limits/stream-usage.ts'
import type { UsageLedger } from '../limits/usage.ts'
import { DEBUG_HEADER, routeRequestFor, type RouteRequest } from '../routing/route-request.ts'
import type { Resolution } from '../routing/router.ts'
import type { RuntimeSnapshot } from '../runtime/snapshot.ts'
import type { AccessLog } from '../telemetry/access-log.ts'
import { GEN_AI_OPERATION, type GatewayMetrics } from '../telemetry/metrics.ts'
import { REQUEST_ID_HEADER } from '../telemetry/request-id.ts'
import { RequestTrace } from '../telemetry/request-trace.ts'
import { activeTracing } from '../telemetry/tracing.ts'
import { PRIORITY_CLASS } from '../upstream/fair-queue.ts'
import { HOP_HEADER, type Upstream } from '../upstream/upstream.ts'
import { CallCache } from './call-cache.ts'
import { ProxyCall } from './call.ts'
import type { CallContext, CallRequest, UpstreamMember } from './context.ts'
import type { Endpoint } from './endpoints.ts'
import { parseBody, parseObject, RELEASED_BODY, rewriteModel, type ParsedBody } from './request-body.ts'
import type { CacheEndpoint } from '../cache/index.ts'
import type { ClientResponse } from '../protocols/client-response.ts'
import type { NativeRequest } from '../providers/index.ts'
import { pickForwarded, type ForwardedHeaders } from '../protocols/forwarded-headers.ts'

/** What the pipeline reads from the gateway's live state on each request. */
export interface PipelineState {
  readonly snapshot: RuntimeSnapshot<CallContext>
  /** The response cache, or null when caching is off. */
  readonly cache: ResponseCache | null
  readonly metrics: GatewayMetrics
  readonly accessLog: AccessLog | null
  /** Usage per tenant, key and model (lives across reloads). */
  readonly usage: UsageLedger
  /** Client headers passed upstream (`server.forwardHeaders`, compiled at boot). */
  readonly forwardedHeaders: ForwardedHeaders
}

/**
 * One request, authenticated and parsed (and translated, for another protocol), ready to route.
 * Made for one request and owned by it: `parsed`, `body` and `native` are let go in place once
 * its call commits (`Served.release()`).
 */
export interface PreparedCall {
  readonly endpoint: Endpoint
  readonly principal: Principal
  parsed: ParsedBody
  /** The bytes for an OpenAI-compatible upstream: the client's own, or a translation. */
  body: Buffer
  /** Stands in for the client's response when the answer must be translated back; null: the raw response. */
  readonly res: ClientResponse | null
  /** The cache endpoint this request is stored as; null keeps the cache out. */
  readonly cacheAs: CacheEndpoint | null
  /** The request in its own protocol, for upstreams that speak it natively. */
  native: NativeRequest | null
}

/**
 * The client's side of one request, whichever HTTP layer received it (fastify's routes, or the
 * lean handler of the proxied routes): what the pipeline reads, and where it answers.
 */
export interface Exchange {
  readonly id: string
  readonly headers: IncomingHttpHeaders
  /** performance.now() ms when the request arrived. */
  readonly startedAt: number
  /** The client's response; the pipeline writes it itself once it called `takeOver()`. */
  readonly raw: ServerResponse
  /** From here on the pipeline answers (fastify: `reply.hijack()`); a no-op without a framework. */
  takeOver(): void
}

/** The body of a call that committed (`Served.release()`). */
const RELEASED = Buffer.alloc(0)

/**
 * One request on its way through the pipeline, once resolved and admitted: everything the steps
 * share, and, filled in by `forward`, the request its ProxyCall carries out (one object per
 * request for both, every field set in the constructor).
 */
class Served implements CallRequest {
  readonly state: PipelineState
  readonly snapshot: RuntimeSnapshot<CallContext>
  readonly call: PreparedCall
  readonly exchange: Exchange
  readonly resolution: Resolution<Upstream>
  readonly metering: Metering | null
  /** The request's spans, or null when tracing is off or the request is not sampled. */
  trace: RequestTrace | null
  /** An unsampled request's trace context for the upstream (`traceparent`, `tracestate` name/value pairs); null when tracing is off or it has spans. */
  traceContext: string[] | null
  /** The cache's part in the call, or null when the cache stays out. */
  cache: CallCache | null
  // CallRequest: what the call, the exchange and the principal already hold is read from them.
  readonly priority: number
  /** The model the client named and whether it streams: kept here, past the body's release. */
  readonly model: string
  readonly stream: boolean
  affinityKey: string | null
  route: RouteRequest | null
  body: Buffer
  forwardedHeaders: string[] | null
  excluded: Set<UpstreamMember> | null
  usageFilter: UsageEventFilter | null

  constructor(state: PipelineState, snapshot: RuntimeSnapshot<CallContext>, call: PreparedCall, exchange: Exchange, resolution: Resolution<Upstream>, metering: Metering | null) {
    this.state = state
    this.snapshot = snapshot
    this.call = call
    this.exchange = exchange
    this.resolution = resolution
    this.metering = metering
    this.trace = null
    this.traceContext = null
    this.cache = null
    this.priority = PRIORITY_CLASS[call.principal.priority]
    this.model = call.parsed.model
    this.stream = call.parsed.stream
    this.affinityKey = null
    this.route = null
    this.body = call.body
    this.forwardedHeaders = null
    this.excluded = null
    this.usageFilter = null
  }

  /**
   * The call committed to one answer and starts no other attempt: the body, as bytes and as
   * parsed, is let go, so a long stream (or a long non-streamed answer) does not hold its prompt
   * until it ends. What the call reads after this (model, stream, the principal, the response it
   * writes to) stays. An attempt still writing the request keeps its own reference until written.
   */
  release(): void {
    const call = this.call
    this.body = RELEASED
    call.body = RELEASED
    call.parsed = RELEASED_BODY
    call.native = null
  }

  get endpoint(): Endpoint {
    return this.call.endpoint
  }
  get native(): NativeRequest | null {
    return this.call.native
  }
  get tenant(): string {
    return this.call.principal.tenant
  }
  get keyName(): string {
    return this.call.principal.keyName
  }
  get requestId(): string {
    return this.exchange.id
  }
  get startedAt(): number {
    return this.exchange.startedAt
  }
}

/** The route handler of a proxied OpenAI endpoint. */
export function proxy(state: PipelineState, endpoint: Endpoint, exchange: Exchange, raw: Buffer | undefined): void | Promise<void> {
  if (raw === undefined || raw.length === 0) throw new GatewayError('GW_ERR_INVALID_JSON', 'the body is empty')
  const snapshot = state.snapshot
  const principal = snapshot.auth.authenticate(exchange.headers)
  // A feature that reads the whole body on every request (metering, the cache, prefix hashing)
  // makes a scan first pure extra work: the body is parsed at once. Else the scan reads model,
  // stream and the affinity body field in one pass and nothing is parsed.
  const parsed = snapshot.readsWholeBody || state.cache !== null ? parseObject(raw) : parseBody(raw, snapshot.config.routing.hashKey.bodyField)
  return proxyParsed(state, { endpoint, principal, parsed, body: raw, res: null, cacheAs: endpoint.name as CacheEndpoint, native: null }, exchange)
}

/** Authorize, resolve, admit (limits), answer from the cache when it can, else forward. */
export function proxyParsed(state: PipelineState, call: PreparedCall, exchange: Exchange): void | Promise<void> {
  const snapshot = state.snapshot
  const { parsed, principal } = call
  snapshot.auth.authorize(principal, parsed.model)
  const resolution = snapshot.resolve(parsed.model)
  if (resolution === null) throw new GatewayError('GW_ERR_MODEL_NOT_FOUND', parsed.model, { param: 'model' })
  if (!snapshot.metered) return serve(new Served(state, snapshot, call, exchange, resolution, null))
  // Limits reserve what the request may cost before anything else is done for it.
  const limits = snapshot.limits
  const admission = limits.admit({ tenant: principal.tenant, keyName: principal.keyName, model: parsed.model }, estimateCost(call.body.length, parsed.json, limits.defaultMaxTokens))
  if (admission instanceof Promise) {
    return admission.then((a) => serve(new Served(state, snapshot, call, exchange, resolution, new Metering(a, principal, parsed.model, limits, state.usage))))
  }
  return serve(new Served(state, snapshot, call, exchange, resolution, new Metering(admission, principal, parsed.model, limits, state.usage)))
}

function serve(served: Served): void | Promise<void> {
  const { state, call, exchange, resolution, metering } = served
  const { endpoint, parsed, principal } = call
  const headers = exchange.headers
  const tracing = activeTracing()
  if (tracing !== null) {
    // Sampling first: an unsampled request makes no span and only passes its trace context on.
    const sampling = tracing.sampling.decide(headers)
    if (sampling.sampled) {
      served.trace = new RequestTrace(tracing, headers, { requestId: exchange.id, method: 'POST', path: endpoint.path, operation: GEN_AI_OPERATION[endpoint.name] ?? endpoint.name, model: parsed.model, stream: parsed.stream, body: parsed.json, tenant: principal.tenant }, exchange.startedAt, sampling.traceId)
    } else {
      served.traceContext = sampling.propagate
    }
  }
  if (metering !== null) {
    metering.writeHeaders(exchange.raw)
    // Whatever way the response ends (a 4xx/5xx written by the error handler, a client gone
    // before the call started), the admission is settled; after a call it already was.
    exchange.raw.once('close', () => metering.end(null, false))
  }

  const cache = state.cache
  if (cache !== null && call.cacheAs !== null) {
    const user = parsed.json.user
    const plan = cache.plan({ tenant: principal.tenant, endUser: typeof user === 'string' ? user : null, endpoint: call.cacheAs, model: resolution.model, body: parsed.json, headers })
    served.cache = new CallCache(cache, plan)
    const hit = cache.lookup(plan)
    if (hit !== null) {
      if (!(hit instanceof Promise)) return replayHit(served, hit)
      // The shared tier answers within redis.commandTimeoutMs, or as a miss.
      return hit.then((h) => (h !== null ? replayHit(served, h) : forward(served)))
    }
  }
  forward(served)
}

function forward(served: Served): void {
  const { state, snapshot, call, exchange, resolution, metering, trace } = served
  const { endpoint, parsed } = call
  const headers = exchange.headers
  const traceContext = served.traceContext
  // With tracing on, the trace context sent upstream is the tracer's (a span's, or the unsampled request's own).
  const forwardedHeaders = pickForwarded(headers, state.forwardedHeaders, exchange.id, trace !== null || traceContext !== null)
  if (traceContext !== null) forwardedHeaders.push(...traceContext)
  served.forwardedHeaders = forwardedHeaders
  if (resolution.model !== parsed.model) served.body = rewriteModel(parsed.json, resolution.model)
  if (metering !== null && snapshot.limits.countsTokens && needsStreamUsage(endpoint.name, parsed.json)) {
    served.body = askForStreamUsage(served.body, parsed.json)
    served.usageFilter = new UsageEventFilter()
  }
  // A request another gateway forwarded is served here or fails here: never bounced to a peer.
  if (headers[HOP_HEADER] !== undefined) served.excluded = snapshot.peerMembers()
  const routing = snapshot.config.routing
  const affinityKey = affinityKeyOf(routing.hashKey, headers, parsed)
  served.affinityKey = affinityKey
  served.route = routeRequestFor(routing, affinityKey, parsed, resolution.model, headers[DEBUG_HEADER], served.tenant, served.priority)
  exchange.takeOver()
  new ProxyCall(snapshot.ctx, call.res ?? exchange.raw, served).start()
}

function replayHit(served: Served, hit: CachedResponse): void {
  const { state, call, exchange, metering, trace } = served
  const { endpoint, principal } = call
  const model = call.parsed.model
  metering?.end(null, true, true)
  exchange.takeOver()
  served.cache!.cache.replay(hit, served.cache!.plan, call.res ?? exchange.raw, { [REQUEST_ID_HEADER]: exchange.id })
  state.metrics.countRequest(endpoint.name, model, 'cache', 200)
  const outcome = hit.similarity !== null ? 'semantic-hit' : 'hit'
  if (trace !== null || state.accessLog !== null) {
    const now = performance.now()
    trace?.end({ status: 200, cache: outcome, responseModel: null, inputTokens: null, outputTokens: null, errorType: null }, null, now)
    state.accessLog?.record({
      id: exchange.id, tenant: principal.tenant, route: endpoint.name, model, upstream: null, member: null, status: 200, cache: outcome,
      ttftMs: null, durationMs: Math.round((now - exchange.startedAt) * 1000) / 1000, inputTokens: null, outputTokens: null, attempts: 0, error: null,
    })
  }
}

/** The session key consistent hashing routes on: a configured header, else a body field (`user`). */
export function affinityKeyOf(hashKey: { readonly header?: string | undefined; readonly bodyField: string }, headers: IncomingHttpHeaders, body: ParsedBody): string | null {
  if (hashKey.header !== undefined) {
    const value = headers[hashKey.header]
    if (typeof value === 'string' && value !== '') return value
  }
  const field = body.text(hashKey.bodyField)
  return field !== undefined && field !== '' ? field : null
}
