/**
 * Renders the gateway's config file from stack outputs and stack config. Pure: no Pulumi, no I/O.
 * The result is validated with the gateway's own schema (one schema, never two), so the platform
 * cannot ship a config the gateway would refuse at boot.
 */
import type { ApiKeyConfig } from '../../gateway/src/auth/config.ts'
import type { LimitsConfigInput } from '../../gateway/src/limits/config.ts'
import { createHash } from 'node:crypto'
import { stringify } from 'yaml'
import { GatewayConfigSchema, type GatewayConfig, type GatewayConfigInput } from '../../gateway/src/config/schema.ts'
import { ADMIN_PORT, ADMIN_TOKEN_ENV } from './monitoring.ts'

export { ADMIN_PORT, ADMIN_TOKEN_ENV }

/** Port the gateway listens on, on the node itself (host networking). */
export const GATEWAY_PORT = 8080
/** Where the ConfigMap is mounted and what `--config` points at. */
export const GATEWAY_CONFIG_DIR = '/etc/velox'
export const GATEWAY_CONFIG_FILE = 'gateway.yaml'
export const GATEWAY_CONFIG_PATH = `${GATEWAY_CONFIG_DIR}/${GATEWAY_CONFIG_FILE}`
/** Environment variable the gateway reads the cache AUTH token from. */
export const REDIS_PASSWORD_ENV = 'VELOX_REDIS_PASSWORD'
/** Environment variable holding the key this region presents to peer regions. */
export const PEER_API_KEY_ENV = 'VELOX_PEER_API_KEY'
/** Auth entry (name and tenant) of the key peer regions present. */
export const PEER_KEY_NAME = 'velox-peer'

/** A client API key as the gateway's auth section lists it: only its hash is ever rendered. */
export interface ApiKeyEntry {
  readonly name: string
  readonly tenant: string
  readonly hash: string
  readonly models?: readonly string[]
  readonly expiresAt?: string
  readonly priority?: ApiKeyConfig['priority']
}

export interface GatewayConfigInputs {
  /** In-cluster vLLM base URL, e.g. http://vllm.velox.svc.cluster.local:8000. */
  readonly inferenceUrl: string
  /** Model id served by that upstream. */
  readonly model: string
  /** ElastiCache primary endpoint address and port. */
  readonly cache: { readonly host: string; readonly port: number; readonly tls: boolean; readonly authToken: boolean }
  readonly pool: { readonly connections: number; readonly warm: number; readonly keepAliveTimeoutMs: number; readonly maxConnectionAgeMs: number }
  readonly timeouts: { readonly connectMs: number; readonly firstByteMs: number; readonly idleMs: number; readonly totalMs: number }
  /** Peer regions' gateway base URLs, used only when no local upstream is healthy. */
  readonly fallbackUpstreams: readonly string[]
  readonly workers: number
  readonly logLevel: GatewayConfig['log']['level']
  readonly redisCommandTimeoutMs: number
  /** Load balancer idle timeout (s); the gateway's client keep-alive must outlive it. */
  readonly loadBalancerIdleTimeoutSeconds: number
  /** Stack stage: every stage but dev requires client API keys. */
  readonly stage: string
  /** Client API keys (hashes). */
  readonly apiKeys: readonly ApiKeyEntry[]
  /**
   * sha256 hash (`sha256:<hex>`) of the key every region of the stage presents to its peers, when
   * one is configured: the gateway sends it on fallback calls and accepts it from peers.
   */
  readonly peerKeyHash?: string
  /** Bytes of the in-memory cache tier per worker (the shared tier is Valkey). */
  readonly cacheMaxBytes: number
  /** How long SIGTERM waits for in-flight streams (ms). */
  readonly shutdownTimeoutMs: number
  /** Limit rules and prices (the gateway's `limits` section); counted in the stack's Valkey, shared by every gateway pod. */
  readonly limits?: LimitsConfigInput
  /**
   * The semantic tier's models in the cluster (velox:semanticCache): when present, semantic
   * lookups are on, embedding through `embedding` and verified by the `reranker` cross-encoder.
   */
  readonly semantic?: SemanticModels
}

export interface SemanticModels {
  /** vLLM serving the embedding model: base URL (`/v1/embeddings` is appended) and model id. */
  readonly embedding: { readonly url: string; readonly model: string }
  /** vLLM serving the cross-encoder: base URL (`/v1/rerank` is called) and model id. */
  readonly reranker: { readonly url: string; readonly model: string; readonly minScore: number }
  readonly threshold?: number
}

export interface RenderedGatewayConfig {
  /** The validated config, every default filled in. */
  readonly config: GatewayConfig
  /** YAML of what was rendered (defaults are left to the gateway, so the file stays short). */
  readonly yaml: string
  /**
   * sha256 of the YAML without the auth section: the pod template annotation that rolls the
   * gateway. Key changes are left out on purpose: the gateway watches its config file and swaps
   * the key table on reload, so rotating a key updates the ConfigMap and restarts nothing.
   */
  readonly hash: string
}

/** Upstream name for a fallback URL: `fallback-<host>`, trimmed to the schema's 64 characters. */
export function fallbackName(url: string): string {
  const host = new URL(url).hostname.replace(/[^A-Za-z0-9_.-]/g, '-')
  return `fallback-${host}`.slice(0, 64)
}

export function buildGatewayConfig(input: GatewayConfigInputs): GatewayConfigInput {
  if (input.stage !== 'dev' && input.apiKeys.length === 0) {
    throw new Error(`stage ${input.stage} serves the internet and needs client API keys: set velox:apiKeys (see docs/workloads.md)`)
  }
  const scheme = input.cache.tls ? 'rediss' : 'redis'
  const pool = { ...input.pool }
  const timeouts = { ...input.timeouts }
  return {
    server: {
      host: '0.0.0.0',
      port: GATEWAY_PORT,
      workers: input.workers,
      keepAliveTimeoutMs: (input.loadBalancerIdleTimeoutSeconds + 5) * 1000,
      shutdownTimeoutMs: input.shutdownTimeoutMs,
    },
    log: { level: input.logLevel },
    // On the pod's (host) network for Prometheus inside the cluster; the token guards it (the
    // gateway refuses a listener off loopback without one). The NLB only targets GATEWAY_PORT.
    admin: { host: '0.0.0.0', port: ADMIN_PORT, tokenEnv: ADMIN_TOKEN_ENV },
    upstreams: [
      // The inference Service is headless: every vLLM pod's address becomes its own balanced member.
      { name: 'vllm-local', url: input.inferenceUrl, models: [input.model], priority: 0, pool, timeouts, discovery: { dns: true, intervalMs: 5000 } },
      ...input.fallbackUpstreams.map((url) => ({
        name: fallbackName(url),
        url,
        models: [input.model],
        priority: 1,
        // Another Velox gateway: requests carry a hop mark and are never bounced back.
        peer: true,
        // A peer region is a remote origin: fewer warm sockets, a longer connect budget.
        pool: { ...pool, warm: Math.min(pool.warm, 2), connections: Math.max(1, Math.floor(pool.connections / 4)) },
        timeouts: { ...timeouts, connectMs: Math.max(timeouts.connectMs, 3000) },
        // The peer's auth is on (every stage but dev): present the stage's peer key.
        ...(input.peerKeyHash !== undefined ? { apiKeyEnv: PEER_API_KEY_ENV } : {}),
      })),
    ],
    redis: {
      url: `${scheme}://${input.cache.host}:${input.cache.port}`,
      ...(input.cache.authToken ? { passwordEnv: REDIS_PASSWORD_ENV } : {}),
      commandTimeoutMs: input.redisCommandTimeoutMs,
    },
    // Valkey is the shared tier every gateway of the region reads and fills; memory stays as L1.
    cache: { backend: 'redis', maxBytes: input.cacheMaxBytes, ...(input.semantic !== undefined ? { semantic: semanticSection(input.semantic) } : {}) },
    auth: {
      keys: [
        ...input.apiKeys.map((k) => ({
          name: k.name,
          tenant: k.tenant,
          hash: k.hash,
          ...(k.models ? { models: [...k.models] } : {}),
          ...(k.expiresAt !== undefined ? { expiresAt: k.expiresAt } : {}),
          // Defaults are left to the gateway, so the file stays short.
          ...(k.priority !== undefined && k.priority !== 'normal' ? { priority: k.priority } : {}),
        })),
        ...(input.peerKeyHash !== undefined ? [{ name: PEER_KEY_NAME, tenant: PEER_KEY_NAME, hash: input.peerKeyHash }] : []),
      ],
    },
    // Limits are exact across the region's gateway pods only when they count in the shared Valkey.
    ...(input.limits !== undefined && (input.limits.rules?.length ?? 0) > 0 ? { limits: { ...input.limits, backend: 'redis' as const } } : {}),
    // Never serve simulated completions from a deployed gateway.
    simulator: { enabled: false },
  }
}

/**
 * Semantic lookups on for every route, embedding with the cluster's embedding model and verifying
 * candidates with its reranker. A reranker that fails or is slow falls back to the embedded
 * lexical verifier: never a hit without verification, never a request that waits on it.
 */
function semanticSection(m: SemanticModels): NonNullable<NonNullable<GatewayConfigInput['cache']>['semantic']> {
  return {
    enabled: true,
    ...(m.threshold !== undefined ? { threshold: m.threshold } : {}),
    // The model id versions the partition: a new embedding model starts a new vector space.
    embedder: { kind: 'openai', url: m.embedding.url, model: m.embedding.model, version: m.embedding.model },
    verifier: { kind: 'rerank', url: `${m.reranker.url}/v1`, model: m.reranker.model, api: 'rerank', minScore: m.reranker.minScore, fallback: 'lexical' },
  }
}

/** Builds, validates against GatewayConfigSchema, and serialises the gateway config. */
export function renderGatewayConfig(input: GatewayConfigInputs): RenderedGatewayConfig {
  const raw = buildGatewayConfig(input)
  const result = GatewayConfigSchema.safeParse(raw)
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    throw new Error(`rendered gateway config is invalid:\n  - ${lines.join('\n  - ')}`)
  }
  const yaml = stringify(raw, { lineWidth: 0 })
  const { auth: _keys, ...rolling } = raw
  return { config: result.data, yaml, hash: createHash('sha256').update(stringify(rolling, { lineWidth: 0 })).digest('hex') }
}
