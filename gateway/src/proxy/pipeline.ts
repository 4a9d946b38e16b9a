/**
 * The request pipeline behind every POST endpoint: read the body once, authenticate and
 * authorize, resolve the model, answer from the cache when it can, else forward the original
 * bytes through a ProxyCall.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CachedResponse, CachePlan, ResponseCache } from '../cache/index.ts'
import type { Principal } from '../auth/authenticator.ts'
import { GatewayError } from '../errors.ts'
import { estimateCost } from '../limits/estimate.ts'
import { Metering } from '../limits/metering.ts'
import { askForStreamUsage, needsStreamUsage, UsageEventFilter } from '../limits/stream-usage.ts'
import type { UsageLedger } from '../limits/usage.ts'
import { DEBUG_HEADER, routeRequestFor } from '../routing/route-request.ts'
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
import type { CallContext } from './context.ts'
import type { Endpoint } from './endpoints.ts'
import { parseBody, rewriteModel, type ParsedBody } from './request-body.ts'
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

/** One request, authenticated and parsed (and translated, for another protocol), ready to route. */
export interface PreparedCall {
  readonly endpoint: Endpoint
  readonly principal: Principal
  readonly parsed: ParsedBody
  /** The bytes for an OpenAI-compatible upstream: the client's own, or a translation. */
  readonly body: Buffer
  /** Stands in for the client's response when the answer must be translated back; null: the raw response. */
  readonly res: ClientResponse | null
  /** The cache endpoint this request is stored as; null keeps the cache out. */
  readonly cacheAs: CacheEndpoint | null
  /** The request in its own protocol, for upstreams that speak it natively. */
  readonly native: NativeRequest | null
}

/** The route handler of a proxied OpenAI endpoint. */
export function proxy(state: PipelineState, endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): void | Promise<void> {
  const raw = request.body as Buffer | undefined
  if (raw === undefined || raw.length === 0) throw new GatewayError('GW_ERR_INVALID_JSON', 'the body is empty')
  const principal = state.snapshot.auth.authenticate(request.headers)
  return proxyParsed(state, { endpoint, principal, parsed: parseBody(raw), body: raw, res: null, cacheAs: endpoint.name as CacheEndpoint, native: null }, request, reply)
}

/** Authorize, resolve, admit (limits), answer from the cache when it can, else forward. */
export function proxyParsed(state: PipelineState, call: PreparedCall, request: FastifyRequest, reply: FastifyReply): void | Promise<void> {
  const snapshot = state.snapshot
  const { endpoint, parsed, principal } = call
  const raw = call.body
  snapshot.auth.authorize(principal, parsed.model)
  const resolution = snapshot.resolve(parsed.model)
  if (resolution === null) throw new GatewayError('GW_ERR_MODEL_NOT_FOUND', parsed.model, { param: 'model' })
  if (!snapshot.metered) return serve(state, snapshot, call, request, reply, resolution, null)
  // Limits reserve what the request may cost before anything else is done for it.
  const limits = snapshot.limits
  const admission = limits.admit({ tenant: principal.tenant, keyName: principal.keyName, model: parsed.model }, estimateCost(raw.length, parsed.json, limits.defaultMaxTokens))
  if (admission instanceof Promise) {
    return admission.then((a) => serve(state, snapshot, call, request, reply, resolution, new Metering(a, principal, parsed.model, limits, state.usage)))
  }
  return serve(state, snapshot, call, request, reply, resolution, new Metering(admission, principal, parsed.model, limits, state.usage))
}

function serve(
  state: PipelineState,
  snapshot: RuntimeSnapshot<CallContext>,
  call: PreparedCall,
  request: FastifyRequest,
  reply: FastifyReply,
  resolution: Resolution<Upstream>,
  metering: Metering | null,
): void | Promise<void> {
  const { endpoint, parsed, principal } = call
  const headers = request.headers
  const tracing = activeTracing()
  const trace =
    tracing === null
      ? null
      : new RequestTrace(tracing, headers, { requestId: request.id, method: 'POST', path: endpoint.path, operation: GEN_AI_OPERATION[endpoint.name] ?? endpoint.name, model: parsed.model, stream: parsed.stream, body: parsed.json, tenant: principal.tenant }, request.startedAt)
  if (metering !== null) {
    metering.writeHeaders(reply.raw)
    // Whatever way the response ends (a 4xx/5xx written by the error handler, a client gone
    // before the call started), the admission is settled; after a call it already was.
    reply.raw.once('close', () => metering.end(null, false))
  }

  let callCache: CallCache | null = null
  const cache = state.cache
  if (cache !== null && call.cacheAs !== null) {
    const user = parsed.json.user
    const plan = cache.plan({ tenant: principal.tenant, endUser: typeof user === 'string' ? user : null, endpoint: call.cacheAs, model: resolution.model, body: parsed.json, headers })
    callCache = new CallCache(cache, plan)
    const hit = cache.lookup(plan)
    if (hit !== null) {
      if (!(hit instanceof Promise)) return replayHit(state, cache, plan, hit, call, request, reply, trace, metering)
      // The shared tier answers within redis.commandTimeoutMs, or as a miss.
      const onMiss = callCache
      return hit.then((h) => {
        if (h !== null) replayHit(state, cache, plan, h, call, request, reply, trace, metering)
        else forward(state, snapshot, call, request, reply, resolution, onMiss, trace, metering)
      })
    }
  }
  forward(state, snapshot, call, request, reply, resolution, callCache, trace, metering)
}

function forward(
  state: PipelineState,
  snapshot: RuntimeSnapshot<CallContext>,
  call: PreparedCall,
  request: FastifyRequest,
  reply: FastifyReply,
  resolution: Resolution<Upstream>,
  cache: CallCache | null,
  trace: RequestTrace | null,
  metering: Metering | null,
): void {
  const { endpoint, parsed, principal } = call
  const headers = request.headers
  const forwardedHeaders = pickForwarded(headers, state.forwardedHeaders, request.id, trace !== null)
  let body = resolution.model === parsed.model ? call.body : rewriteModel(parsed.json, resolution.model)
  let usageFilter: UsageEventFilter | null = null
  if (metering !== null && snapshot.limits.countsTokens && needsStreamUsage(endpoint.name, parsed.json)) {
    body = askForStreamUsage(body, parsed.json)
    usageFilter = new UsageEventFilter()
  }
  // A request another gateway forwarded is served here or fails here: never bounced to a peer.
  const excluded = headers[HOP_HEADER] !== undefined ? snapshot.peerMembers() : null
  const routing = snapshot.config.routing
  const key = affinityKey(routing.hashKey, headers, parsed.json)
  const priority = PRIORITY_CLASS[principal.priority]
  reply.hijack()
  const proxied = new ProxyCall(snapshot.ctx, call.res ?? reply.raw, {
    endpoint,
    model: parsed.model,
    resolution,
    affinityKey: key,
    route: routeRequestFor(routing, key, parsed.json, resolution.model, headers[DEBUG_HEADER], principal.tenant, priority),
    body,
    forwardedHeaders,
    startedAt: request.startedAt,
    excluded,
    cache,
    requestId: request.id,
    tenant: principal.tenant,
    keyName: principal.keyName,
    priority,
    stream: parsed.stream,
    trace,
    metering,
    usageFilter,
    native: call.native,
  })
  proxied.start()
}

function replayHit(
  state: PipelineState,
  cache: ResponseCache,
  plan: CachePlan,
  hit: CachedResponse,
  call: PreparedCall,
  request: FastifyRequest,
  reply: FastifyReply,
  trace: RequestTrace | null,
  metering: Metering | null,
): void {
  const { endpoint, principal } = call
  const model = call.parsed.model
  metering?.end(null, true, true)
  reply.hijack()
  cache.replay(hit, plan, call.res ?? reply.raw, { [REQUEST_ID_HEADER]: request.id })
  state.metrics.countRequest(endpoint.name, model, 'cache', 200)
  const outcome = hit.similarity !== null ? 'semantic-hit' : 'hit'
  if (trace !== null || state.accessLog !== null) {
    const now = performance.now()
    trace?.end({ status: 200, cache: outcome, responseModel: null, inputTokens: null, outputTokens: null, errorType: null }, null, now)
    state.accessLog?.record({
      id: request.id, tenant: principal.tenant, route: endpoint.name, model, upstream: null, member: null, status: 200, cache: outcome,
      ttftMs: null, durationMs: Math.round((now - request.startedAt) * 1000) / 1000, inputTokens: null, outputTokens: null, attempts: 0, error: null,
    })
  }
}

/** The session key consistent hashing routes on: a configured header, else a body field (`user`). */
export function affinityKey(hashKey: { readonly header?: string | undefined; readonly bodyField: string }, headers: FastifyRequest['headers'], body: Record<string, unknown>): string | null {
  if (hashKey.header !== undefined) {
    const value = headers[hashKey.header]
    if (typeof value === 'string' && value !== '') return value
  }
  const field = body[hashKey.bodyField]
  return typeof field === 'string' && field !== '' ? field : null
}
