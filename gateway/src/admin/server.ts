/**
 * The admin listener: operator surfaces on a port of their own (Envoy's admin interface), never
 * the public one. Every route but `/healthz` needs the admin token when `admin.tokenEnv` is set.
 *
 *   GET  /metrics                         Prometheus text (cluster-wide in a cluster worker)
 *   GET  /members                         routing members: health, breaker, EWMA, outstanding, pool
 *   POST /members/{name}/drain            no new requests; in-flight ones finish
 *   POST /members/{name}/undrain
 *   POST /members/{name}/eject?ms=N       open its breaker for N ms (default 30000)
 *   POST /cache/purge                     {"tenant": "..."} or {"key": "..."}
 *   POST /reload                          reload the config from its source
 *   GET  /config                          the running config, secrets redacted
 *   GET  /usage?day=|from=&to=&tenant=&key=&model=&by=   usage per UTC day (usage.ts)
 *   GET  /debug/pprof/profile?seconds=N   CPU profile (pprof)
 *   GET  /debug/pprof/heap[?seconds=N]    sampled heap profile (pprof)
 */
import { hash, timingSafeEqual } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { GatewayError } from '../errors.ts'
import type { Gateway, ReloadResult } from '../gateway.ts'
import type { Logger } from '../telemetry/logger.ts'
import { cpuProfile, heapProfile } from '../telemetry/profiling.ts'
import { describeMember, ejectMember } from './members.ts'
import { redactConfig } from './redact.ts'
import { usageReport, type UsageQuery } from './usage.ts'
import { lazySchemaController } from '../runtime/schema-compilers.ts'

export interface AdminOptions {
  /** The admin token; null: no token (loopback only, enforced by the config schema). */
  token: string | null
  /** Reloads the config from where it came from; null when it has no source (tests, inline configs). */
  reload: (() => Promise<ReloadResult>) | null
  /** The `/metrics` body: this process's registry, or the cluster's sum. */
  metricsText: () => Promise<string>
  logger: Logger
}

const MAX_PROFILE_SECONDS = 300
const DEFAULT_EJECT_MS = 30_000
const MAX_EJECT_MS = 24 * 3600_000

function seconds(raw: unknown, fallback: number): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0 || n > MAX_PROFILE_SECONDS) throw new GatewayError('GW_ERR_INVALID_BODY', `seconds must be between 0 and ${MAX_PROFILE_SECONDS}`)
  return n
}

export function buildAdminServer(gateway: Gateway, opts: AdminOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: opts.logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), childLoggerFactory: (l) => l, schemaController: lazySchemaController() })
  const digest = opts.token === null ? null : hash('sha256', opts.token, 'buffer')

  app.addHook('onRequest', (request, reply, done) => {
    if (digest === null || request.url === '/healthz') return done()
    const auth = request.headers.authorization
    const given = auth !== undefined && auth.startsWith('Bearer ') ? hash('sha256', auth.slice(7).trim(), 'buffer') : null
    if (given === null || !timingSafeEqual(given, digest)) {
      const err = new GatewayError('GW_ERR_ADMIN_UNAUTHORIZED')
      void reply.code(err.status).type('application/json').send(err.body())
      return
    }
    done()
  })
  app.setErrorHandler((error, request, reply) => {
    const err = error instanceof GatewayError ? error : new GatewayError(typeof (error as { statusCode?: number }).statusCode === 'number' && (error as { statusCode: number }).statusCode < 500 ? 'GW_ERR_INVALID_BODY' : 'GW_ERR_INTERNAL', (error as Error).message)
    if (err.status >= 500) request.log.error({ err: error, url: request.url }, 'admin request failed')
    if (err.retryAfter !== null) void reply.header('retry-after', String(err.retryAfter))
    return reply.code(err.status).type('application/json').send(err.body())
  })
  app.setNotFoundHandler((request, reply) => {
    const err = new GatewayError('GW_ERR_NOT_FOUND', `${request.method} ${request.url.split('?')[0]}`)
    return reply.code(err.status).type('application/json').send(err.body())
  })

  const member = (name: string) => {
    const m = gateway.snapshot.router.members().find((x) => x.name === name)
    if (m === undefined) throw new GatewayError('GW_ERR_MEMBER_NOT_FOUND', name)
    return m
  }
  const audit = (action: string, fields: Record<string, unknown>): void => opts.logger.warn({ admin: action, ...fields }, `admin: ${action}`)

  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }))
  app.get('/metrics', async (_request, reply) => reply.type(gateway.metrics.registry.contentType).send(await opts.metricsText()))
  app.get('/members', (_request, reply) => {
    const now = performance.now()
    return reply.send({ generation: gateway.generation, members: gateway.snapshot.router.members().map((m) => describeMember(m, now)) })
  })
  app.post<{ Params: { name: string } }>('/members/:name/drain', (request, reply) => {
    const m = member(request.params.name)
    m.draining = true
    audit('drain', { member: m.name })
    return reply.send(describeMember(m, performance.now()))
  })
  app.post<{ Params: { name: string } }>('/members/:name/undrain', (request, reply) => {
    const m = member(request.params.name)
    m.draining = false
    audit('undrain', { member: m.name })
    return reply.send(describeMember(m, performance.now()))
  })
  app.post<{ Params: { name: string }; Querystring: { ms?: string } }>('/members/:name/eject', (request, reply) => {
    const m = member(request.params.name)
    const raw = request.query.ms
    const ms = raw === undefined ? DEFAULT_EJECT_MS : Number(raw)
    if (!Number.isInteger(ms) || ms <= 0 || ms > MAX_EJECT_MS) throw new GatewayError('GW_ERR_INVALID_BODY', `ms must be a whole number between 1 and ${MAX_EJECT_MS}`)
    const now = performance.now()
    ejectMember(m, ms, now)
    audit('eject', { member: m.name, ms })
    return reply.send(describeMember(m, now))
  })

  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, body === '' ? {} : JSON.parse(body as string))
    } catch (err) {
      done(new GatewayError('GW_ERR_INVALID_JSON', (err as Error).message), undefined)
    }
  })
  app.post<{ Body: unknown }>('/cache/purge', async (request, reply) => {
    const body = request.body
    const cache = gateway.cache
    const b = (typeof body === 'object' && body !== null ? body : {}) as { tenant?: unknown; key?: unknown }
    const tenant = typeof b.tenant === 'string' && b.tenant !== '' ? b.tenant : null
    const key = typeof b.key === 'string' && b.key !== '' ? b.key : null
    if ((tenant === null) === (key === null)) throw new GatewayError('GW_ERR_INVALID_BODY', 'give exactly one of "tenant" or "key" (strings)')
    if (cache === null) throw new GatewayError('GW_ERR_CACHE_DISABLED')
    let purged
    try {
      purged = await cache.purge(tenant !== null ? { tenant } : { key: key! })
    } catch (err) {
      throw new GatewayError('GW_ERR_CACHE_PURGE_FAILED', (err as Error).message)
    }
    audit('cache purge', { tenant, key, ...purged })
    return reply.send({ purged })
  })
  app.post('/reload', async (_request, reply) => {
    if (opts.reload === null) throw new GatewayError('GW_ERR_RELOAD_REJECTED', 'this gateway has no config source to reload from')
    audit('reload', {})
    const result = await opts.reload()
    if (!result.applied) throw new GatewayError('GW_ERR_RELOAD_REJECTED', result.reason ?? 'unknown reason')
    return reply.send({ applied: true, generation: gateway.generation })
  })
  app.get('/config', (_request, reply) => reply.send({ generation: gateway.generation, config: redactConfig(gateway.snapshot.config) }))
  app.get<{ Querystring: UsageQuery }>('/usage', async (request, reply) => reply.send(await usageReport(gateway.usage, request.query)))

  app.get<{ Querystring: { seconds?: string } }>('/debug/pprof/profile', async (request, reply) => {
    const body = await cpuProfile(seconds(request.query.seconds, 30))
    return reply.type('application/octet-stream').header('content-disposition', 'attachment; filename="cpu.pb.gz"').send(body)
  })
  app.get<{ Querystring: { seconds?: string } }>('/debug/pprof/heap', async (request, reply) => {
    const body = await heapProfile(seconds(request.query.seconds, 0))
    return reply.type('application/octet-stream').header('content-disposition', 'attachment; filename="heap.pb.gz"').send(body)
  })
  return app
}
