/**
 * buildServer(config) -> a fastify instance with every route registered and the runtime snapshot
 * compiled. It never listens; gateway/src/main.ts (or a test) does.
 */
import cluster from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { GatewayConfig } from './config/schema.ts'
import { GatewayError } from './errors.ts'
import { ResponseCache, type CachePlan, type CachedResponse } from './cache/index.ts'
import { clusterMetrics } from './cluster/messages.ts'
import { ENDPOINTS, type Endpoint } from './proxy/endpoints.ts'
import { Gateway } from './gateway.ts'
import { ProxyCall, type CallCache } from './proxy/call.ts'
import { HOP_HEADER } from './upstream/upstream.ts'
import { parseBody, rewriteModel } from './proxy/request-body.ts'
import { GatewayMetrics } from './telemetry/metrics.ts'
import { createLogger, type Logger } from './telemetry/logger.ts'

export { Gateway }

export interface BuildOptions {
  /** A logger to use instead of one built from `config.log`. */
  logger?: Logger
  env?: NodeJS.ProcessEnv
  /** Register Node's default process metrics (off in tests that build many servers). */
  defaultMetrics?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    velox: Gateway
  }
  interface FastifyRequest {
    startedAt: number
  }
}

const ROUTE_NAMES = new Map(ENDPOINTS.map((e) => [e.path, e.name]))

/**
 * Requests Node cannot parse never reach a route: answer them in the OpenAI shape too, then close.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const gwErr =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new GatewayError('GW_ERR_HEADERS_TOO_LARGE')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new GatewayError('GW_ERR_REQUEST_TIMEOUT')
        : new GatewayError('GW_ERR_MALFORMED_REQUEST', err.code ?? err.message)
  const body = gwErr.body()
  socket.end(`HTTP/1.1 ${gwErr.status} ${STATUS_TEXT[gwErr.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

/** Client headers passed upstream; everything else (credentials above all) stays behind. */
const FORWARDED_REQUEST_HEADERS = ['x-request-id', 'openai-beta'] as const

export async function buildServer(config: GatewayConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? createLogger(config.log.level)
  const metrics = new GatewayMetrics({ defaultMetrics: opts.defaultMetrics ?? true })
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: building one (bindings, redaction) was a measurable share of
    // per-request garbage. Request-scoped lines carry their own fields instead.
    childLoggerFactory: (logger) => logger,
    bodyLimit: config.server.bodyLimit,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    return503OnClosing: false,
    requestTimeout: config.server.requestTimeoutMs,
    clientErrorHandler,
    forceCloseConnections: false,
    requestIdHeader: 'x-request-id',
  })
  const cache = config.cache.enabled ? await ResponseCache.create(config.cache, config.redis, metrics.registry, logger) : null
  const gateway = new Gateway(config, logger, metrics, opts.env ?? process.env, cache)
  app.decorate('velox', gateway)
  app.decorateRequest('startedAt', 0)
  // Every request counts until its response closes, so shutdown drains uploads and replays too.
  const onResponseClose = (): void => {
    gateway.openRequests--
  }
  app.addHook('onRequest', (request, reply, done) => {
    request.startedAt = performance.now()
    gateway.openRequests++
    reply.raw.on('close', onResponseClose)
    done()
  })
  app.addHook('onClose', async () => {
    await gateway.close()
  })

  // Bodies are read once, as bytes; parsing is the handler's job so the bytes can be forwarded as-is.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    const type = req.headers['content-type']
    // `curl -d` labels JSON as a form; read it as JSON anyway. Multipart and the like are refused.
    if (type === undefined || type === '' || /^[\w.+-]+\/[\w.+-]*\+?json\b|^application\/x-www-form-urlencoded\b/i.test(type)) done(null, body)
    else done(new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', type.split(';')[0]!), undefined)
  })

  app.setErrorHandler((error, request, reply) => {
    const err = toGatewayError(error)
    if (err.status >= 500) request.log.error({ err: error }, 'request failed')
    gateway.metrics.countRequest(ROUTE_NAMES.get(request.routeOptions.url ?? '') ?? 'other', 'none', 'none', err.status)
    if (err.retryAfter !== null) void reply.header('retry-after', String(err.retryAfter))
    return reply.code(err.status).type('application/json').send(err.body())
  })
  const postPaths = new Set(ENDPOINTS.map((e) => e.path))
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!
    const err = postPaths.has(path)
      ? new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${path}; use POST`)
      : new GatewayError('GW_ERR_NOT_FOUND', `${request.method} ${path}`)
    if (err.status === 405) void reply.header('allow', 'POST')
    return reply.code(err.status).type('application/json').send(err.body())
  })

  for (const endpoint of ENDPOINTS) {
    app.post(endpoint.path, (request, reply) => proxy(gateway, endpoint, request, reply))
  }

  app.get('/v1/models', (_request, reply) => reply.type('application/json').send(gateway.snapshot.modelsBody))
  app.get<{ Params: { '*': string } }>('/v1/models/*', (request, reply) => {
    const id = request.params['*']
    if (!gateway.snapshot.modelIds.has(id)) throw new GatewayError('GW_ERR_MODEL_NOT_FOUND', id, { param: 'model' })
    return reply.type('application/json').send({ id, object: 'model', created: 0, owned_by: 'velox' })
  })
  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }))
  app.get('/readyz', (_request, reply) => {
    const ready = gateway.isReady()
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : gateway.shuttingDown ? 'shutting down' : 'not ready' })
  })
  // In a cluster, any worker may take the scrape: it answers with every worker's metrics summed.
  if (cluster.isWorker) {
    // Constructing one installs prom-client's worker-side IPC listener; setRegistries says what to report.
    new AggregatorRegistry()
    AggregatorRegistry.setRegistries([metrics.registry])
  }
  // Operator surfaces live on the admin listener; the main port keeps /metrics only for local
  // use, while neither an admin listener nor client auth is configured.
  if (config.admin.port === undefined && config.auth.keys.length === 0) {
    app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metricsText(metrics)))
  }
  return app
}

/** The Prometheus exposition: this process's registry, or in a cluster worker every worker's, summed. */
export function metricsText(metrics: GatewayMetrics): Promise<string> {
  return cluster.isWorker ? clusterMetrics() : metrics.registry.metrics()
}

function proxy(gateway: Gateway, endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): void | Promise<void> {
  const raw = request.body as Buffer | undefined
  if (raw === undefined || raw.length === 0) throw new GatewayError('GW_ERR_INVALID_JSON', 'the body is empty')
  const snapshot = gateway.snapshot
  const principal = snapshot.auth.authenticate(request.headers.authorization)
  const parsed = parseBody(raw)
  snapshot.auth.authorize(principal, parsed.model)
  const resolution = snapshot.resolve(parsed.model)
  if (resolution === null) throw new GatewayError('GW_ERR_MODEL_NOT_FOUND', parsed.model, { param: 'model' })
  const headers = request.headers

  let callCache: CallCache | null = null
  const cache = gateway.cache
  if (cache !== null) {
    const user = parsed.json.user
    const plan = cache.plan({ tenant: principal.tenant, endUser: typeof user === 'string' ? user : null, endpoint: endpoint.name, model: resolution.model, body: parsed.json, headers })
    callCache = { cache, plan, semantic: null, recorder: null }
    const hit = cache.lookup(plan)
    if (hit !== null) {
      if (!(hit instanceof Promise)) return replayHit(gateway, cache, plan, hit, endpoint, parsed.model, reply)
      // The shared tier answers within redis.commandTimeoutMs, or as a miss.
      const onMiss = callCache
      return hit.then((h) => {
        if (h !== null) replayHit(gateway, cache, plan, h, endpoint, parsed.model, reply)
        else forward(gateway, snapshot, endpoint, request, reply, parsed, resolution, raw, onMiss)
      })
    }
  }
  forward(gateway, snapshot, endpoint, request, reply, parsed, resolution, raw, callCache)
}

function forward(
  gateway: Gateway,
  snapshot: Gateway['snapshot'],
  endpoint: Endpoint,
  request: FastifyRequest,
  reply: FastifyReply,
  parsed: ReturnType<typeof parseBody>,
  resolution: NonNullable<ReturnType<Gateway['snapshot']['resolve']>>,
  raw: Buffer,
  callCache: CallCache | null,
): void {
  const headers = request.headers
  const body = resolution.model === parsed.model ? raw : rewriteModel(parsed.json, resolution.model)
  let extra: string[] | null = null
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headers[name]
    if (typeof value === 'string') (extra ??= []).push(name, value)
  }
  // A request another gateway forwarded is served here or fails here: never bounced to a peer.
  const excluded = headers[HOP_HEADER] !== undefined ? snapshot.peerMembers() : null
  reply.hijack()
  const call = new ProxyCall(snapshot.ctx, reply.raw, endpoint, parsed.model, resolution, affinityKey(snapshot.config.routing.hashKey, headers, parsed.json), body, extra, request.startedAt, excluded, callCache)
  call.start()
  if (callCache !== null && !call.finished) {
    const abort = new AbortController()
    const semantic = callCache.cache.semanticLookup(callCache.plan, abort.signal)
    if (semantic !== null) {
      callCache.semantic = abort
      call.raceSemantic(semantic)
    }
  }
}

function replayHit(gateway: Gateway, cache: ResponseCache, plan: CachePlan, hit: CachedResponse, endpoint: Endpoint, model: string, reply: FastifyReply): void {
  reply.hijack()
  cache.replay(hit, plan, reply.raw, {})
  gateway.metrics.countRequest(endpoint.name, model, 'cache', 200)
}

/** The session key consistent hashing routes on: a configured header, else a body field (`user`). */
function affinityKey(hashKey: { header?: string | undefined; bodyField: string }, headers: FastifyRequest['headers'], body: Record<string, unknown>): string | null {
  if (hashKey.header !== undefined) {
    const value = headers[hashKey.header]
    if (typeof value === 'string' && value !== '') return value
  }
  const field = body[hashKey.bodyField]
  return typeof field === 'string' && field !== '' ? field : null
}

function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  const e = error as { code?: string; statusCode?: number; message?: string }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('GW_ERR_BODY_TOO_LARGE', String((e as { bodyLimit?: number }).bodyLimit ?? ''))
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new GatewayError('GW_ERR_INVALID_JSON', e.message)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', e.message)
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('GW_ERR_INVALID_BODY', 'Content-Length does not match the body')
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new GatewayError('GW_ERR_INVALID_BODY', e.message ?? 'bad request')
  }
  return new GatewayError('GW_ERR_INTERNAL', undefined, { cause: error })
}
