/**
 * buildServer(config) -> a fastify instance with every route registered and the runtime snapshot
 * compiled. It never listens; gateway/src/main.ts (or a test) does.
 */
import cluster from 'node:cluster'
import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { AggregatorRegistry } from 'prom-client'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { GatewayConfig } from './config/schema.ts'
import { GatewayError } from './errors.ts'
import { clientErrorHandler, toGatewayError } from './http-errors.ts'
import { ResponseCache } from './cache/index.ts'
import { clusterMetrics } from './cluster/messages.ts'
import { ENDPOINTS } from './proxy/endpoints.ts'
import { Gateway } from './gateway.ts'
import { proxy, proxyParsed, type Exchange } from './proxy/pipeline.ts'
import { LeanHandler, LeanIncomingMessage, leanRequestsSupported } from './proxy/lean-handler.ts'
import { lingerOnClose, UploadGuard } from './proxy/client-limits.ts'
import { conformHttp, hostError } from './proxy/http-conformance.ts'
import { COUNT_TOKENS_PATH, MESSAGES_PATH, isAnthropicRoute, translateMessagesCall } from './proxy/messages.ts'
import { gatewayErrorBody } from './protocols/anthropic/errors.ts'
import { decodeBody, isIdentity } from './protocols/content-encoding.ts'
import { Cors } from './protocols/cors.ts'
import { GatewayMetrics } from './telemetry/metrics.ts'
import { createLogger, type Logger } from './telemetry/logger.ts'
import { lazySchemaController } from './runtime/schema-compilers.ts'
import { REQUEST_ID_HEADER, requestId } from './telemetry/request-id.ts'

// node:http through require, not an ESM import: building an ESM namespace of node:http reads its
// lazy WebSocket getters, which loads Node's bundled undici (about 12 MB resident) for nothing.
const http = createRequire(import.meta.url)('node:http') as typeof import('node:http')

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

const ROUTE_NAMES = new Map<string, string>([...ENDPOINTS.map((e) => [e.path, e.name] as const), ['/v1/messages', 'messages'], ['/v1/messages/count_tokens', 'messages.count_tokens']])

export async function buildServer(config: GatewayConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? createLogger(config.log.level)
  const metrics = new GatewayMetrics({ defaultMetrics: opts.defaultMetrics ?? true })
  // Plain proxied requests are served by the lean handler straight from node:http; fastify gets
  // the rest (see proxy/lean-handler.ts). Set once the gateway exists, before the server listens.
  let lean: LeanHandler | null = null
  let uploads: UploadGuard | null = null
  const app = Fastify({
    serverFactory: (handler, factoryOptions) => {
      const options = factoryOptions as { http?: ServerOptions; keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number }
      const serverOptions: ServerOptions = leanRequestsSupported ? { ...options.http, IncomingMessage: LeanIncomingMessage } : (options.http ?? {})
      const server = http.createServer(serverOptions, (req: IncomingMessage, res: ServerResponse) => {
        const taken = lean !== null && lean.take(req, res)
        uploads?.watch(req, res, taken)
        if (!taken) handler(req, res)
      })
      // What fastify sets on a server it creates itself.
      server.keepAliveTimeout = options.keepAliveTimeout
      server.requestTimeout = options.requestTimeout
      server.setTimeout(options.connectionTimeout)
      return server
    },
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
    // The client's x-request-id when usable, else a UUID (see telemetry/request-id.ts).
    requestIdHeader: false,
    genReqId: requestId,
    // Host is checked by the onRequest hook, so a request without one gets an OpenAI-shaped 400 (Node's is empty).
    http: { requireHostHeader: false },
    // ajv and fast-json-stringify only if a route ever has a schema (none has).
    schemaController: lazySchemaController(),
    // A path whose percent-encoding does not decode: fastify's own answer is not in the OpenAI shape.
    frameworkErrors: (error, _request, reply) => {
      const err = new GatewayError('GW_ERR_MALFORMED_REQUEST', error.message)
      void (reply as FastifyReply).code(err.status).type('application/json').send(err.body())
    },
  })
  conformHttp(app.server)
  const cache = config.cache.enabled ? await ResponseCache.create(config.cache, config.redis, metrics.registry, logger) : null
  const gateway = new Gateway(config, logger, metrics, opts.env ?? process.env, cache)
  app.decorate('velox', gateway)
  void gateway.start()
  app.decorateRequest('startedAt', 0)
  // Every request counts until its response closes, so shutdown drains uploads and replays too.
  const onResponseClose = (): void => {
    gateway.openRequests--
  }
  const cors = new Cors(config.server.cors)
  lean = new LeanHandler(gateway, { bodyLimit: config.server.bodyLimit, cors, toGatewayError: (error) => toGatewayError(error, config.server.bodyLimit) })
  app.addHook('onRequest', (request, reply, done) => {
    request.startedAt = performance.now()
    gateway.openRequests++
    reply.raw.on('close', onResponseClose)
    const bad = hostError(request.raw)
    if (bad !== null) {
      if (!request.raw.complete) lingerOnClose(request.raw.socket)
      void reply.code(bad.status).header('connection', 'close').type('application/json').send(bad.body())
      return
    }
    if (cors.enabled) cors.decorate(request.headers, reply.raw)
    done()
  })
  if (cors.enabled) {
    app.options('/*', (request, reply) => {
      if (!Cors.isPreflight(request.method, request.headers)) throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', `OPTIONS ${request.url.split('?')[0]!}`)
      reply.hijack()
      cors.preflight(request.headers, reply.raw)
    })
  }
  const { requestTimeoutMs, bodyMinBytesPerSecond, bodyMinRateAfterMs } = config.server
  const guard = new UploadGuard(app.server, { requestTimeoutMs, bodyMinBytesPerSecond, bodyMinRateAfterMs }, (status) => gateway.metrics.countRequest('other', 'none', 'none', status))
  uploads = guard
  app.addHook('onListen', async () => guard.start())
  app.addHook('onClose', async () => {
    guard.close()
    await gateway.close()
  })

  // Bodies are read once, as bytes; parsing is the handler's job so the bytes can be forwarded as-is.
  app.removeAllContentTypeParsers()
  // Compressed bodies (gzip, deflate, br, zstd) are decoded here, within the same body limit.
  const bodyLimit = config.server.bodyLimit
  const decoded = (req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void): void => {
    const encoding = req.headers['content-encoding']
    if (isIdentity(encoding)) done(null, body)
    else decodeBody(body, encoding!, bodyLimit, done)
  }
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => decoded(req, body as Buffer, done))
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    const type = req.headers['content-type']
    // `curl -d` labels JSON as a form; read it as JSON anyway. Multipart and the like are refused.
    if (type === undefined || type === '' || /^[\w.+-]+\/[\w.+-]*\+?json\b|^application\/x-www-form-urlencoded\b/i.test(type)) decoded(req, body as Buffer, done)
    else done(new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', type.split(';')[0]!), undefined)
  })

  app.setErrorHandler((error, request, reply) => {
    const err = toGatewayError(error, config.server.bodyLimit)
    const route = ROUTE_NAMES.get(request.routeOptions.url ?? '') ?? 'other'
    if (err.status >= 500) request.log.error({ err: error, requestId: request.id }, 'request failed')
    gateway.metrics.countRequest(route, 'none', 'none', err.status)
    gateway.accessLog?.refused(request.id, route, err.status, err.code, request.startedAt)
    if (err.retryAfter !== null) void reply.header('retry-after', String(err.retryAfter))
    void reply.header(REQUEST_ID_HEADER, request.id)
    // Refused before its body was read (413): close only once the client can read the answer.
    if (!request.raw.complete) lingerOnClose(request.raw.socket)
    return reply.code(err.status).type('application/json').send(isAnthropicRoute(request.url) ? gatewayErrorBody(err) : err.body())
  })
  const postPaths = new Set([...ENDPOINTS.map((e) => e.path), MESSAGES_PATH, COUNT_TOKENS_PATH])
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!
    const err = postPaths.has(path)
      ? new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${path}; use POST`)
      : new GatewayError('GW_ERR_NOT_FOUND', `${request.method} ${path}`)
    if (err.status === 405) void reply.header('allow', 'POST')
    void reply.header(REQUEST_ID_HEADER, request.id)
    return reply.code(err.status).type('application/json').send(isAnthropicRoute(path) ? gatewayErrorBody(err) : err.body())
  })

  for (const endpoint of ENDPOINTS) {
    app.post(endpoint.path, (request, reply) => proxy(gateway, endpoint, new FastifyExchange(request, reply), request.body as Buffer | undefined))
  }
  // The Anthropic Messages API, translated at the edge onto the same pipeline.
  for (const [path, countOnly] of [[MESSAGES_PATH, false], [COUNT_TOKENS_PATH, true]] as const) {
    app.post(path, (request, reply) => proxyParsed(gateway, translateMessagesCall(gateway.snapshot, request.body as Buffer | undefined, request.headers, reply.raw, countOnly), new FastifyExchange(request, reply)))
  }

  // With API keys configured the model list needs one too, and shows only what that key may use.
  app.get('/v1/models', (request, reply) => {
    const snapshot = gateway.snapshot
    const principal = snapshot.auth.authenticate(request.headers)
    return reply.type('application/json').send(snapshot.modelsBodyFor(principal))
  })
  app.get<{ Params: { '*': string } }>('/v1/models/*', (request, reply) => {
    const id = request.params['*']
    const snapshot = gateway.snapshot
    const principal = snapshot.auth.authenticate(request.headers)
    // A model the key may not use is not found, as OpenAI answers: its existence is not revealed.
    // Whatever a chat request could use is a model too: aliases, and any name a "*" upstream serves.
    if (!snapshot.modelVisible(principal, id) && !(principal.models === null && snapshot.resolve(id) !== null)) throw new GatewayError('GW_ERR_MODEL_NOT_FOUND', id, { param: 'model' })
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

/** A request fastify routed, as the pipeline sees it. */
class FastifyExchange implements Exchange {
  readonly request: FastifyRequest
  readonly reply: FastifyReply

  constructor(request: FastifyRequest, reply: FastifyReply) {
    this.request = request
    this.reply = reply
  }

  get id(): string {
    return this.request.id
  }

  get headers(): FastifyRequest['headers'] {
    return this.request.headers
  }

  get startedAt(): number {
    return this.request.startedAt
  }

  get raw(): ServerResponse {
    return this.reply.raw
  }

  takeOver(): void {
    this.reply.hijack()
  }
}

/** The Prometheus exposition: this process's registry, or in a cluster worker every worker's, summed. */
export function metricsText(metrics: GatewayMetrics): Promise<string> {
  return cluster.isWorker ? clusterMetrics() : metrics.registry.metrics()
}
