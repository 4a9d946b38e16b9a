/**
 * The gateway configuration schema: the single source of truth for every key, its type and its
 * default. The YAML loader, the env overrides and the Pulumi renderer (infra/lib) all validate
 * against this one schema; nothing else defines config shape.
 *
 * Unknown keys are rejected everywhere (`z.strictObject`), so a typo fails at boot with its path
 * instead of being silently ignored.
 */
import { z } from 'zod'
import { AdminSchema } from '../admin/config.ts'
import { AuthSchema } from '../auth/config.ts'
import { NEVER_FORWARDED } from '../protocols/config.ts'
import { UPSTREAM_KINDS } from '../providers/config.ts'
import { CacheConfigSchema } from '../cache/config.ts'
import { LimitsSchema } from '../limits/config.ts'
import { RoutingConfigSchema, UpstreamDiscoverySchema, routingIssues } from '../routing/config.ts'
import { TelemetrySchema } from '../telemetry/config.ts'
import { LOG_LEVELS, envVarName, millis, nonNegativeInt, positiveInt, upstreamName } from './primitives.ts'

export { LOG_LEVELS } from './primitives.ts'

export const ServerSchema = z.strictObject({
  /** Interface to listen on. */
  host: z.string().min(1).default('0.0.0.0'),
  /** TCP port; 0 picks a free one (tests). */
  port: z.number().int().min(0).max(65535).default(8080),
  /** Largest request body accepted, in bytes; larger bodies get 413 GW_ERR_BODY_TOO_LARGE. */
  bodyLimit: positiveInt.default(8 * 1024 * 1024),
  /** Keep-alive timeout for client connections (ms). Keep it above the load balancer's idle timeout. */
  keepAliveTimeoutMs: millis.default(65_000),
  /** Longest time to receive a whole request, headers and body, from a client (ms); slower uploads get 408. */
  requestTimeoutMs: positiveInt.default(60_000),
  /**
   * Lowest average rate of a request body (bytes/s), judged once it has been arriving for
   * `bodyMinRateAfterMs`; slower gets 408 GW_ERR_BODY_TOO_SLOW. 0 disables (requestTimeoutMs still applies).
   */
  bodyMinBytesPerSecond: nonNegativeInt.default(1_024),
  bodyMinRateAfterMs: positiveInt.default(5_000),
  /**
   * On SIGTERM, how long the gateway keeps accepting and serving with /readyz already failing,
   * before it stops listening and drains (ms). Set it above the load balancer's deregistration
   * time (health-check interval x unhealthy threshold, plus the target deregistration delay), so
   * no connection is refused during a rollout. SIGINT skips it. The pod's grace period must cover
   * shutdownDelayMs + shutdownTimeoutMs.
   */
  shutdownDelayMs: millis.default(0),
  /** How long SIGTERM/SIGINT waits for in-flight requests and streams before exiting (ms). */
  shutdownTimeoutMs: millis.default(30_000),
  /**
   * SSE keep-alive (ms; 0: off). When a stream's first event has not come this long after the
   * request (a long prefill, a deep queue), the gateway sends the stream's headers and an SSE
   * comment, then one every as many ms until the first event, so a load balancer's idle timeout
   * does not cut the connection. Set it below that timeout (AWS ALB: 60 s). It ends failover for
   * that request: a failure before the first event then ends the stream with an SSE error event.
   */
  sseKeepAliveMs: millis.default(0),
  /** Add a `Server-Timing` header (gateway and upstream time) to every proxied response. */
  serverTiming: z.boolean().default(true),
  /** Worker processes sharing the port: 1 runs in-process, 0 means one per core. */
  workers: nonNegativeInt.default(1),
  /**
   * Client request headers passed upstream; every other client header stays behind. `user-agent`
   * is sent as `x-forwarded-user-agent`. Credentials (`authorization`, `x-api-key`, `cookie`) and
   * framing headers are never forwarded and are refused here.
   */
  forwardHeaders: z
    .array(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'an HTTP header name'))
    .default(['x-request-id', 'openai-beta', 'anthropic-version', 'anthropic-beta', 'traceparent', 'tracestate', 'user-agent'])
    .refine((names) => names.every((n) => !NEVER_FORWARDED.has(n.toLowerCase())), { message: `credentials and framing headers are never forwarded (${[...NEVER_FORWARDED].join(', ')})` }),
  /** CORS for browser clients: allowed origins (`https://app.example.com`, or `"*"`); empty turns CORS off. */
  cors: z
    .strictObject({
      origins: z.array(z.string().regex(/^(\*|https?:\/\/[^\s/]+)$/, 'an origin (scheme://host[:port]) or "*"')).default([]),
      /** How long a browser may cache a preflight answer (s). */
      maxAgeSeconds: nonNegativeInt.default(600),
    })
    .prefault({}),
})

export const PoolSchema = z.strictObject({
  /** Maximum connections to this upstream origin. */
  connections: positiveInt.default(64),
  /** Connections opened at boot, before /readyz turns ready. */
  warm: nonNegativeInt.default(4),
  /** HTTP/1.1 pipelining depth per connection; 1 disables pipelining. */
  pipelining: positiveInt.default(1),
  /**
   * Idle keep-alive timeout for pooled connections (ms). Must stay below the upstream server's
   * own keep-alive timeout (uvicorn, which vLLM uses, closes idle connections after 5 s), so the
   * gateway never writes to a socket the upstream is closing.
   */
  keepAliveTimeoutMs: positiveInt.default(4_000),
  /** Maximum lifetime of an idle pooled connection (ms) before it is closed and replaced; 0 = unbounded. */
  maxConnectionAgeMs: millis.default(300_000),
  /**
   * Keep connections open ahead of demand: the recent peak of concurrent requests times
   * (1 + headroom), between `warm` and `connections`, so a burst never waits on handshakes.
   */
  adaptive: z.boolean().default(true),
  /** Share of extra connections kept above the recent peak concurrency. */
  headroom: z.number().min(0).max(4).default(0.5),
  /** Negotiate HTTP/2 over TLS (ALPN) with upstreams that offer it. */
  http2: z.boolean().default(false),
  /**
   * The HTTP client of the proxied path. `auto`: the gateway's own HTTP/1.1 client
   * (upstream/http1-pool.ts) for a plain `http:` upstream without pipelining, undici for TLS,
   * HTTP/2 and pipelining; `undici`: undici always.
   */
  client: z.enum(['auto', 'undici']).default('auto'),
  /**
   * Requests that may wait for a connection once `connections x pipelining` are busy (Envoy's
   * max_pending_requests). Past it a request fails over to another member, or gets 503
   * GW_ERR_UPSTREAM_OVERLOADED with Retry-After. 0: never wait.
   */
  maxPending: nonNegativeInt.default(256),
  /** Longest a request waits for a connection (ms); then it fails over, or gets that 503. */
  queueTimeoutMs: positiveInt.default(5_000),
})

export const TimeoutsSchema = z.strictObject({
  /** TCP (and TLS) connect timeout (ms). */
  connectMs: positiveInt.default(2_000),
  /** Time from sending the request to the upstream's response headers: time to first byte (ms). */
  firstByteMs: positiveInt.default(60_000),
  /** Longest gap between two body chunks, e.g. between two streamed tokens (ms); 0 disables. */
  idleMs: millis.default(60_000),
  /** Whole-request deadline, streams included (ms); 0 disables. */
  totalMs: millis.default(600_000),
})

export const UpstreamSchema = z.strictObject({
  /** Unique name used in metrics, logs and `x-velox-upstream`. */
  name: upstreamName,
  /** OpenAI-compatible base URL; `/v1/...` is appended. A path prefix is kept (`https://host/openai`). */
  url: z.url({ protocol: /^https?$/ }).refine((u) => !URL.canParse(u) || (!new URL(u).search && !new URL(u).hash), 'no query or fragment'),
  /** Model ids this upstream serves; `"*"` serves any model. */
  models: z.array(z.string().min(1)).min(1),
  /**
   * The upstream's protocol: `openai` (OpenAI-compatible: vLLM, SGLang, TGI, OpenAI), `anthropic`
   * (the Messages API), `azure-openai` (deployment URLs, `api-version`, `api-key` header),
   * `gemini` (Gemini's OpenAI-compatible endpoint) or `bedrock` (Amazon Bedrock's Converse API,
   * SigV4-signed). See docs/protocols.md.
   */
  kind: z.enum(UPSTREAM_KINDS).default('openai'),
  /** `azure-openai`: the `api-version` query parameter (default 2024-10-21). */
  apiVersion: z.string().regex(/^[0-9a-z.-]{4,40}$/).optional(),
  /** `azure-openai`: model id -> deployment name; a model not listed uses its id as the deployment. */
  deployments: z.record(z.string().min(1), z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/)).optional(),
  /** `bedrock`: the AWS region (default: from a `bedrock-runtime.REGION.amazonaws.com` URL, else AWS_REGION). */
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'an AWS region such as us-east-1').optional(),
  /** Environment variable holding the upstream's API key, sent as the kind's credential (`Authorization: Bearer ...` for openai). */
  apiKeyEnv: envVarName.optional(),
  /** Relative share of traffic among upstreams of the same priority. */
  weight: positiveInt.default(1),
  /** Lower serves first; a higher tier is used only when no upstream of a lower tier is healthy. */
  priority: nonNegativeInt.default(0),
  pool: PoolSchema.prefault({}),
  timeouts: TimeoutsSchema.prefault({}),
  /**
   * Another Velox gateway (a peer region used as a fallback tier). Requests sent to it carry
   * `x-velox-hop`, and a request that already carries it is never sent to a peer again, so two
   * unhealthy regions cannot bounce a request between them.
   */
  peer: z.boolean().default(false),
  /**
   * Health-check path for this upstream, instead of `routing.health.activePath`. A path named
   * here must answer 2xx to count as up (a 404 means the path is wrong, not that the server is
   * fine). Peers default to `/readyz`, with the same 2xx rule, so a region whose own upstreams
   * are all down stops taking its peers' fallback traffic.
   */
  healthPath: z.string().startsWith('/').optional(),
  /** `{ dns: true }`: the URL's hostname (e.g. a Kubernetes headless Service) is re-resolved and every address becomes a member. */
  discovery: UpstreamDiscoverySchema,
})

export const LogSchema = z.strictObject({
  level: z.enum(LOG_LEVELS).default('info'),
})

export const RedisSchema = z.strictObject({
  /**
   * Redis/Valkey endpoint shared by the cache tier and limits: `redis://host:6379/0`, or
   * `rediss://...` for TLS (ElastiCache with in-transit encryption). Absent: everything stays in memory.
   */
  url: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'a redis:// or rediss:// URL').optional(),
  /** Environment variable holding the AUTH token (never written into the config itself). */
  passwordEnv: envVarName.optional(),
  /** Prefix of every key the gateway writes, so several deployments can share one server. */
  keyPrefix: z.string().default('velox:'),
  /** Connect timeout (ms). */
  connectTimeoutMs: positiveInt.default(1_000),
  /** A command slower than this counts as a miss/failure and never stalls a request (ms). */
  commandTimeoutMs: positiveInt.default(50),
})

export const SimulatorSchema = z.strictObject({
  /** Start the built-in inference simulator when no upstream is configured (`npm start` on a laptop). */
  enabled: z.boolean().default(true),
  /** Delay before the first token of a response (ms). */
  ttftMs: millis.default(0),
  /** Delay between streamed tokens (ms). */
  interTokenMs: millis.default(0),
  /** Tokens in each generated completion. */
  tokens: positiveInt.default(16),
})

export const GatewayConfigSchema = z
  .strictObject({
    server: ServerSchema.prefault({}),
    log: LogSchema.prefault({}),
    upstreams: z.array(UpstreamSchema).default([]),
    routing: RoutingConfigSchema.prefault({}),
    redis: RedisSchema.prefault({}),
    cache: CacheConfigSchema.prefault({}),
    auth: AuthSchema.prefault({}),
    limits: LimitsSchema.prefault({}),
    simulator: SimulatorSchema.prefault({}),
    admin: AdminSchema.prefault({}),
    telemetry: TelemetrySchema.prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>()
    cfg.upstreams.forEach((u, i) => {
      if (seen.has(u.name)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `duplicate upstream name "${u.name}"` })
      seen.add(u.name)
      if (u.pool.warm > u.pool.connections) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'pool', 'warm'], message: `warm (${u.pool.warm}) exceeds connections (${u.pool.connections})` })
      }
    })
    if (cfg.cache.enabled && cfg.cache.backend === 'redis' && cfg.redis.url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['cache', 'backend'], message: 'backend "redis" needs redis.url' })
    }
    if (cfg.limits.backend === 'redis' && cfg.redis.url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['limits', 'backend'], message: 'backend "redis" needs redis.url' })
    }
    const keyNames = new Set(cfg.auth.keys.map((k) => k.name))
    cfg.limits.rules.forEach((rule, i) => {
      if (rule.match.key !== undefined && cfg.auth.keysFile === undefined && !keyNames.has(rule.match.key)) {
        ctx.addIssue({ code: 'custom', path: ['limits', 'rules', i, 'match', 'key'], message: `no API key named "${rule.match.key}" in auth.keys` })
      }
    })
    for (const issue of routingIssues(cfg.routing, cfg.upstreams)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message })
  })

/** The validated config with every default filled in. */
export type GatewayConfig = z.output<typeof GatewayConfigSchema>
/** What a person or a renderer may write: every key with a default is optional. */
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>
export type UpstreamConfig = GatewayConfig['upstreams'][number]
