/**
 * The `routing:` section of the gateway config: how a request's model is resolved to upstream
 * members, how one member is chosen, and when a failed attempt may be retried elsewhere.
 *
 * Everything here is validated once at boot and compiled into a Router; nothing is read per request.
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { nonNegativeInt, positiveInt, upstreamName } from '../config/primitives.ts'

export const BALANCER_KINDS = ['p2c-peak-ewma', 'weighted-round-robin', 'least-outstanding', 'consistent-hash', 'inference-aware'] as const
export type BalancerKind = (typeof BALANCER_KINDS)[number]

/**
 * Why an attempt failed, as the request path reports it. `connect`: no connection could be made;
 * `reset`: the connection broke before the response completed; `timeout`: connect or first-byte
 * deadline passed; `429` and `5xx`: the upstream answered with that status.
 */
export const FAILURE_KINDS = ['connect', 'reset', 'timeout', '429', '5xx'] as const
export type FailureKind = (typeof FAILURE_KINDS)[number]

export const HashKeySchema = z.strictObject({
  /** Request header whose value is the affinity key (checked first), e.g. `x-session-id`. */
  header: z.string().min(1).toLowerCase().optional(),
  /** Top-level JSON body field used when the header is absent; OpenAI's `user` by default. */
  bodyField: z.string().min(1).default('user'),
})

export const AliasSchema = z.strictObject({
  /** Model id sent to the upstream in place of the public name. */
  model: z.string().min(1),
  /** Restrict the alias to these upstreams (by name); every upstream serving `model` when absent. */
  upstreams: z.array(upstreamName).min(1).optional(),
})

export const RetrySchema = z.strictObject({
  /** Attempts per request, the first included; 1 disables retries. Only before the first byte reaches the client. */
  maxAttempts: positiveInt.max(10).default(3),
  /** Failure kinds that may be retried on another member. */
  on: z.array(z.enum(FAILURE_KINDS)).default(() => [...FAILURE_KINDS]),
  /**
   * Retries allowed as a fraction of recent requests (over a 10 s window), so a failing upstream
   * cannot be hit with maxAttempts times the traffic. 0.2 = at most one retry per five requests.
   */
  budgetRatio: z.number().min(0).max(1).default(0.2),
  /** Retries always allowed per second regardless of the ratio, so low traffic can still retry. */
  budgetMinPerSecond: nonNegativeInt.default(10),
})

export const HedgeSchema = z.strictObject({
  /** Send a second attempt to another member when the first has not answered after `delayMs`. */
  enabled: z.boolean().default(false),
  /** Hedge delay (ms), or `p95` to follow the observed 95th percentile time to first byte. */
  delayMs: z.union([positiveInt, z.literal('p95')]).default('p95'),
})

export const HealthSchema = z.strictObject({
  /** Path probed on each member, relative to the upstream URL. */
  activePath: z.string().startsWith('/').default('/health'),
  /** Time between probe rounds (ms, jittered by 10%); 0 disables active health checks. */
  intervalMs: nonNegativeInt.default(5_000),
  /** A probe that has not answered 2xx within this time fails (ms). */
  timeoutMs: positiveInt.default(1_000),
  /** Consecutive successful probes before an unhealthy member serves again. */
  healthyThreshold: positiveInt.default(1),
  /** Consecutive failed probes before a healthy member stops serving. */
  unhealthyThreshold: positiveInt.default(2),
})

export const OutlierSchema = z.strictObject({
  /** Consecutive failed requests that eject a member (open its circuit breaker). */
  consecutiveFailures: positiveInt.default(5),
  /** First ejection time (ms); doubles on every ejection in a row, up to `maxEjectionMs`. */
  baseEjectionMs: positiveInt.default(5_000),
  /** Longest ejection time (ms). Staying healthy this long also resets the doubling. */
  maxEjectionMs: positiveInt.default(60_000),
})

const weight = z.number().min(0).max(100)

/** How much each scorer counts in the inference-aware balancer's sum; 0 turns a scorer off. */
export const ScorerWeightsSchema = z.strictObject({
  /**
   * Estimated time to first token: the prompt blocks this gateway sent to the member that have
   * not produced a first token yet, plus the request's own blocks the member does not hold, times
   * the member's learned time per block. Weighs a warm prefix against a queue in one unit.
   */
  prefill: weight.default(4),
  /** Share of the prompt's leading blocks the member recently served (its KV cache likely holds them). */
  prefix: weight.default(1),
  /** Requests waiting in the member's own queue (vLLM's num_requests_waiting plus what was sent since). */
  queue: weight.default(1),
  /** Free KV cache (1 - vllm:kv_cache_usage_perc). */
  kvCache: weight.default(0.5),
  /** Requests in flight on the member (running + waiting, or the gateway's own count without metrics). */
  load: weight.default(1),
  /**
   * Peak-EWMA time to first byte, relative to the fastest member. Kept low by default: an
   * inference pod's time to first byte mostly says how much of the last prompts it had cached.
   */
  latency: weight.default(0.5),
})

export const PrefixIndexSchema = z.strictObject({
  /** Characters per prefix block, even (~4 per token: 256 is about 64 tokens). */
  blockChars: positiveInt.min(16).max(65_536).multipleOf(2).default(256),
  /** Leading blocks of a prompt that are hashed and indexed; the rest of a long prompt is ignored. */
  maxBlocks: positiveInt.max(4096).default(256),
  /** Blocks the index remembers per member group (least recently used forgotten first). */
  capacity: positiveInt.max(10_000_000).default(200_000),
  /**
   * Members remembered per block (the most recent ones). A system prompt every pod has served must
   * be remembered on every pod, or the pods the index forgot look cold for it and lose its new
   * conversations to the few it remembers: keep this near the pods per model.
   */
  membersPerBlock: positiveInt.max(64).default(8),
})

export const PodMetricsSchema = z.strictObject({
  /** Scrape each member's Prometheus endpoint for vLLM's queue and KV-cache gauges. */
  enabled: z.boolean().default(true),
  /** Path on the member, relative to the upstream URL (vLLM serves /metrics at its root). */
  path: z.string().startsWith('/').default('/metrics'),
  /** Time between scrapes (ms). */
  intervalMs: positiveInt.min(50).default(250),
  /** A scrape slower than this fails (ms). */
  timeoutMs: positiveInt.default(1_000),
  /** Scraped numbers older than this are ignored, and the gateway's own counts used instead (ms). */
  staleAfterMs: positiveInt.default(2_000),
})

export const AdmissionSchema = z.strictObject({
  /**
   * A member is saturated when this many requests wait in its queue (vllm:num_requests_waiting
   * plus what the gateway sent since the last scrape). 0 disables admission control.
   */
  queueThreshold: nonNegativeInt.default(0),
  /** When every member is saturated: hold the request until one is not (up to holdMs), or shed it at once. */
  mode: z.enum(['hold', 'shed']).default('hold'),
  /** Longest a request is held before it is shed (ms). */
  holdMs: positiveInt.max(120_000).default(2_000),
  /** Requests held at once per member group; more are shed. */
  maxHeld: positiveInt.default(256),
  /** `Retry-After` of a shed request (s). */
  retryAfterSeconds: positiveInt.default(1),
})

/**
 * The pace's defaults, for the schema and for members made without a config (`Member`): every
 * first token teaches, counting 4 blocks of fixed costs; trusted for 10 s; paces within 1.5x of
 * the group's count as the group's.
 */
export const PACE_DEFAULTS = { minBlocks: 0, fixedBlocks: 4, memoryMs: 10_000, tolerance: 1.5 } as const

export const InferenceAwareSchema = z.strictObject({
  weights: ScorerWeightsSchema.prefault({}),
  /**
   * Bounded load: no member is picked while its load is above this multiple of the mean (plus one
   * request), so one hot prefix cannot pile onto one pod. 0 disables the bound.
   */
  boundedLoad: z.union([z.literal(0), z.number().min(1).max(100)]).default(1.5),
  /**
   * Hysteresis on a conversation's home: the member holding the most of the prompt's leading
   * blocks keeps the request unless its estimated time to first token exceeds the winner's by
   * more than this multiple of the time the winner needs to prefill the blocks only the home
   * holds. 0 turns it off (the best weighted sum always wins).
   */
  stickiness: z.number().min(0).max(100).default(0),
  /**
   * How the learned time per prefill block is sampled: a first token teaches it when at least
   * `minBlocks` blocks were prefilled before it (its own included), as time / (work + fixedBlocks),
   * and every estimate is pace x (work + fixedBlocks). fixedBlocks counts a first token's fixed
   * costs (a decode step, the network) in blocks; with it, warm first tokens can teach too.
   */
  pace: z
    .strictObject({
      minBlocks: z.number().int().min(0).max(4096).default(PACE_DEFAULTS.minBlocks),
      fixedBlocks: z.number().min(0).max(4096).default(PACE_DEFAULTS.fixedBlocks),
      /** How long a learned pace is trusted without a new sample (ms). */
      memoryMs: positiveInt.max(600_000).default(PACE_DEFAULTS.memoryMs),
      /**
       * Paces within this factor of the group's (the lower median of the learned ones) count as
       * the group's: equal pods estimated with the noise of their samples move turns for nothing;
       * a pod clearly slower (or faster) keeps its own. 1 uses every pace as learned.
       */
      tolerance: z.number().min(1).max(100).default(PACE_DEFAULTS.tolerance),
    })
    .prefault({}),
  /**
   * Where new conversations go (requests no member holds a private block of): only to members
   * whose recent traffic per unit of capacity is at most `factor` x the group's; traffic is the
   * requests sent, each decaying over `decayMs`. 0 (the default) turns it off.
   */
  placement: z
    .strictObject({
      factor: z.union([z.literal(0), z.number().min(1).max(100)]).default(0),
      decayMs: positiveInt.max(600_000).default(10_000),
    })
    .prefault({}),
  /**
   * Count the leading blocks that prompts share (a system prompt, where the index saw prompts
   * part) as held by every member: new conversations are then placed by queue and load rather
   * than collecting on the members that served that shared prefix first, and a member without it
   * prefills it once. A conversation's own history still counts only where it is.
   */
  creditSharedPrefix: z.boolean().default(false),
  prefix: PrefixIndexSchema.prefault({}),
  metrics: PodMetricsSchema.prefault({}),
  admission: AdmissionSchema.prefault({}),
  /** Answer `x-velox-route` (why the member won) to requests that send `x-velox-debug: route`. */
  explain: z.boolean().default(false),
})

export const RoutingConfigSchema = z
  .strictObject({
    /** How one member is chosen among the available members of the best priority tier. */
    balancer: z.enum(BALANCER_KINDS).default('p2c-peak-ewma'),
    /** Where the consistent-hash balancer finds the affinity key; ignored by the other balancers. */
    hashKey: HashKeySchema.prefault({}),
    /**
   * Public model name -> upstream model id (and optionally which upstreams serve it). An alias
   * wins over a model of the same name, so it can also pin a model to some upstreams.
   */
    aliases: z.record(z.string().min(1), AliasSchema).default(() => ({})),
    retry: RetrySchema.prefault({}),
    hedge: HedgeSchema.prefault({}),
    health: HealthSchema.prefault({}),
    outlier: OutlierSchema.prefault({}),
    /** Decay time of the peak-EWMA latency estimate (ms): how long a slow response is remembered. */
    ewmaDecayMs: positiveInt.default(10_000),
    /** Settings of the inference-aware balancer (scorer weights, prefix index, pod metrics, admission). */
    inferenceAware: InferenceAwareSchema.prefault({}),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.outlier.maxEjectionMs < cfg.outlier.baseEjectionMs) {
      ctx.addIssue({ code: 'custom', path: ['outlier', 'maxEjectionMs'], message: `maxEjectionMs (${cfg.outlier.maxEjectionMs}) is below baseEjectionMs (${cfg.outlier.baseEjectionMs})` })
    }
  })

/** Per-upstream `discovery:`; absent means the upstream URL's host is used as is. */
export const UpstreamDiscoverySchema = z
  .strictObject({
    /** Re-resolve the URL's hostname (A and AAAA) and route to every address as its own member. */
    dns: z.boolean().default(false),
    /** Time between resolutions (ms). A failed resolution keeps the last known addresses. */
    intervalMs: positiveInt.min(100).default(5_000),
    /**
     * DNS servers asked instead of the system's (`/etc/resolv.conf`): IP addresses with an optional
     * port (`10.96.0.10`, `127.0.0.1:5353`, `[fd00::10]:53`).
     */
    servers: z.array(z.string().refine(isDnsServer, 'an IP address with an optional port (10.96.0.10, 127.0.0.1:5353, [fd00::10]:53)')).min(1).optional(),
  })
  .optional()

function isDnsServer(s: string): boolean {
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s)
  const v4 = /^([\d.]+)(?::(\d{1,5}))?$/.exec(s)
  const port = v6?.[2] ?? v4?.[2]
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return false
  if (v6 !== null) return isIP(v6[1]!) === 6
  if (v4 !== null) return isIP(v4[1]!) === 4
  return isIP(s) === 6
}

export type RoutingConfig = z.output<typeof RoutingConfigSchema>
export type RoutingConfigInput = z.input<typeof RoutingConfigSchema>
export type RetryConfig = RoutingConfig['retry']
export type HealthConfig = RoutingConfig['health']
export type OutlierConfig = RoutingConfig['outlier']
export type HedgeConfig = RoutingConfig['hedge']
export type InferenceAwareConfig = RoutingConfig['inferenceAware']
export type ScorerWeights = InferenceAwareConfig['weights']
export type PrefixIndexConfig = InferenceAwareConfig['prefix']
export type PodMetricsConfig = InferenceAwareConfig['metrics']
export type AdmissionConfig = InferenceAwareConfig['admission']
export type AliasConfig = RoutingConfig['aliases'][string]
export type UpstreamDiscovery = z.output<typeof UpstreamDiscoverySchema>

/** The upstream fields routing reads; the gateway's UpstreamConfig satisfies it. */
export interface RoutedUpstream {
  readonly name: string
  readonly url: string
  readonly models: readonly string[]
  readonly weight: number
  readonly priority: number
  readonly discovery?: UpstreamDiscovery
}

export interface RoutingIssue {
  readonly path: (string | number)[]
  readonly message: string
}

/**
 * Cross-checks between `routing` and `upstreams` that neither schema can see alone; meant for the
 * top-level schema's superRefine (paths are relative to the config root).
 */
export function routingIssues(routing: RoutingConfig, upstreams: readonly RoutedUpstream[]): RoutingIssue[] {
  const issues: RoutingIssue[] = []
  const byName = new Map(upstreams.map((u) => [u.name, u]))
  const served = new Set(upstreams.flatMap((u) => u.models))
  for (const [alias, target] of Object.entries(routing.aliases)) {
    if (target.upstreams) {
      target.upstreams.forEach((name, i) => {
        const u = byName.get(name)
        if (!u) issues.push({ path: ['routing', 'aliases', alias, 'upstreams', i], message: `unknown upstream "${name}"` })
        else if (!u.models.includes(target.model) && !u.models.includes('*')) {
          issues.push({ path: ['routing', 'aliases', alias, 'upstreams', i], message: `upstream "${name}" does not serve model "${target.model}"` })
        }
      })
    } else if (!served.has(target.model) && !served.has('*')) {
      issues.push({ path: ['routing', 'aliases', alias, 'model'], message: `no upstream serves model "${target.model}"` })
    }
  }
  return issues
}
