/**
 * Stack config: the platform's tuning surface (`pulumi config set velox:<key> ...`), read once and
 * validated once, before any resource is declared. Pure: it takes the raw string map Pulumi hands
 * the program (structured values arrive JSON-encoded) and returns a frozen, fully defaulted object,
 * or throws one error listing every problem with its `velox:` key and the allowed values.
 */
import { z } from 'zod'
import { LOG_LEVELS, nonNegativeInt, positiveInt } from '../../gateway/src/config/primitives.ts'
import { parseStackName, type Stage, type StackIdentity } from './naming.ts'
import { decoded, dnsName, hostedZoneId } from './config-values.ts'
import { ApiKeySchema } from '../../gateway/src/auth/config.ts'
import { LimitsSchema } from '../../gateway/src/limits/config.ts'
import {
  CACHE_NODE_TYPES, GATEWAY_INSTANCE_TYPES, INFERENCE_INSTANCE_TYPES,
  gatewayInstanceProblem, inferenceInstanceProblem, instanceType, platformOf,
} from './instance-types.ts'
import { DEFAULT_KUBERNETES_VERSION, eksVersionProblem } from './eks-versions.ts'
import { privateCidrProblem, publicCidrProblem } from './cidrs.ts'

const count = decoded(nonNegativeInt)
const positive = decoded(positiveInt)
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 CIDR such as 10.0.0.0/16')
/** An IAM role ARN (not an `assumed-role` session ARN, which EKS access entries refuse). */
const roleArn = z.string().regex(/^arn:aws[\w-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'an IAM role ARN such as arn:aws:iam::123456789012:role/velox-deploy (not an sts assumed-role ARN)')
/** `repo:tag` or `repo@sha256:<digest>`. */
const IMAGE = /^[a-z0-9]+([._\-/:][a-z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/
const DIGEST = /@sha256:[a-f0-9]{64}$/

const NodeCounts = z.strictObject({ min: count, desired: count, max: positive })
  .refine((n) => n.min <= n.desired && n.desired <= n.max, 'must satisfy min <= desired <= max')

const StackConfigSchema = z.strictObject({
  /** Gateway container image; staging and prod require a digest (`repo@sha256:...`). */
  gatewayImage: z.string().regex(IMAGE, 'an image reference repo:tag or repo@sha256:<64 hex>'),
  /** Platforms the gateway image is published for; the gateway node architecture must be one. */
  imagePlatforms: decoded(z.array(z.enum(['linux/amd64', 'linux/arm64'])).min(1)),
  /** Gateway node instance type: ENA, network-optimised (c7gn/c6gn/c6in). */
  gatewayInstanceType: z.string(),
  gatewayNodes: decoded(NodeCounts),
  /** Gateway pods (one per node, host networking): HPA bounds. */
  gatewayReplicas: decoded(z.strictObject({ min: positive, max: positive }).refine((r) => r.min <= r.max, 'must satisfy min <= max')),
  /** HPA target CPU utilisation (%). Lower scales out earlier and keeps tail latency down. */
  gatewayTargetCpu: decoded(z.number().int().min(10).max(95)),
  /** Gateway worker processes per pod (server.workers); 0 = one per core. */
  gatewayWorkers: count,
  /** GPU instance type for vLLM. */
  inferenceInstanceType: z.string(),
  inferenceNodes: decoded(NodeCounts),
  /** Model id served by vLLM and routed by the gateway. */
  model: z.string().min(1),
  vllmImage: z.string().regex(IMAGE, 'an image reference'),
  /** Extra vLLM server arguments, e.g. ["--max-model-len", "8192"]. */
  vllmExtraArgs: decoded(z.array(z.string())),
  /** Gateway -> vLLM connection pool. */
  pool: decoded(z.strictObject({
    connections: positive, warm: count, keepAliveTimeoutMs: positive, maxConnectionAgeMs: count,
  }).refine((p) => p.warm <= p.connections, 'warm must not exceed connections')),
  timeouts: decoded(z.strictObject({ connectMs: positive, firstByteMs: positive, idleMs: count, totalMs: count })),
  logLevel: z.enum(LOG_LEVELS),
  /** ElastiCache node type. */
  cacheNodeType: z.string(),
  /** Nodes in the replication group (1 primary + replicas). >= 2 enables failover and Multi-AZ. */
  cacheNodes: decoded(z.number().int().min(1).max(6)),
  cacheEngineVersion: z.string().regex(/^\d+\.\d+$/, 'a version such as 8.0'),
  /** AUTH token (set with --secret); optional. Never written into the gateway config. */
  cacheAuthToken: z.string().regex(/^[\x21-\x7e]{16,128}$/, '16-128 printable characters').refine((t) => !/[@"/]/.test(t), 'must not contain @, " or /').optional(),
  redisCommandTimeoutMs: positive,
  /** Public name served by every region, e.g. api.velox.example.com. */
  domain: dnsName,
  /** Existing Route 53 hosted zone id for the domain. */
  hostedZoneId,
  /** ACM certificate for TLS on the load balancer; absent = plain HTTP on port 80. */
  certificateArn: z.string().regex(/^arn:aws[\w-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[\w-]+$/, 'an ACM certificate ARN').optional(),
  /** Seconds between Route 53 health checks: 10 (fast) or 30. */
  healthCheckIntervalSeconds: decoded(z.union([z.literal(10), z.literal(30)])),
  healthCheckFailureThreshold: decoded(z.number().int().min(1).max(10)),
  /** Other regions' gateway base URLs, tried (priority 1) when no local upstream is healthy. */
  fallbackUpstreams: decoded(z.array(z.url({ protocol: /^https?$/ }))),
  /** New VPC (cidr, azCount, NAT layout) unless existingVpc is set. */
  vpc: decoded(z.strictObject({ cidr, azCount: decoded(z.number().int().min(2).max(6)), natGateways: z.enum(['single', 'perAz']) })),
  existingVpc: decoded(z.strictObject({
    vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'a VPC id'),
    privateSubnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).min(2),
    publicSubnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).min(2),
  })).optional(),
  kubernetesVersion: z.string().regex(/^1\.\d{2}$/, `a minor version such as ${DEFAULT_KUBERNETES_VERSION}`),
  /**
   * Public egress CIDRs allowed on the public Kubernetes API endpoint (fixed-egress CI runners, a
   * VPN); [] = private endpoint only. Checked by lib/cidrs.ts: no 0.0.0.0/0, nothing broader than
   * /16, no documentation or private ranges.
   */
  clusterEndpointPublicCidrs: decoded(z.array(cidr)),
  /** Private CIDRs (runners inside or peered with the VPC) allowed to the private API endpoint on 443. */
  clusterEndpointPrivateCidrs: decoded(z.array(cidr)),
  /**
   * Who may use the Kubernetes API, as EKS access entries: the CI deploy role (cluster admin), the
   * PR preview role (read-only, AmazonEKSAdminViewPolicy) and operators (cluster admin). The cluster
   * creator gets no implicit access: whoever runs `pulumi up` must be one of these roles.
   */
  clusterAccess: decoded(z.strictObject({
    deployRoleArn: roleArn,
    previewRoleArn: roleArn.optional(),
    operatorRoleArns: z.array(roleArn),
  })),
  /** Client CIDRs allowed on the load balancer listener. */
  loadBalancerSourceRanges: decoded(z.array(cidr).min(1)),
  /** Sysctl net.core.busy_poll/busy_read on gateway nodes (µs); 0 disables busy polling. */
  busyPollMicros: decoded(z.number().int().min(0).max(200)),
  /**
   * The stage's global stack (`<org>/velox/<stage>-global`): when set, this region adds an endpoint
   * group for its NLB to the global accelerator, and its latency records move to latency.<domain>.
   */
  globalStack: z.string().regex(/^[\w.-]+\/velox\/[a-z]+-global$/, 'a stack reference such as acme/velox/prod-global').optional(),
  /** Share (0-100) of this region's accelerator traffic it takes; lower it to drain a region. */
  acceleratorTrafficDial: decoded(z.number().int().min(0).max(100)),
  /** Extra tags merged into every resource's tags. */
  tags: decoded(z.record(z.string(), z.string())),
  /** Client API keys as the gateway lists them ({name, tenant, hash: sha256:<hex>, models?}); required outside dev. */
  apiKeys: decoded(z.array(ApiKeySchema)),
  /** The gateway's `limits` section (rules, prices; docs/limits.md), validated by the gateway's own schema; counters live in the stack's Valkey. */
  limits: decoded(LimitsSchema).optional(),
  /** Seconds a stopping gateway keeps serving in-flight requests and streams (server.shutdownTimeoutMs). */
  gatewayDrainSeconds: decoded(z.number().int().min(5).max(3600)),
  /** Seconds vLLM may take to download and load the model before the rollout is failed. */
  vllmStartupSeconds: decoded(z.number().int().min(300).max(7200)),
  /** Hugging Face token for gated models (set with --secret); stored in the hf-token Secret. */
  hfToken: z.string().regex(/^hf_[A-Za-z0-9]{20,}$/, 'a Hugging Face token (hf_...)').optional(),
  /** Key this region presents to peer regions, and accepts from them (set with --secret, same value in every region of a stage). */
  peerApiKey: z.string().min(24, 'at least 24 characters').optional(),
  /**
   * What the platform deploys for the cluster's monitoring stack (docs/observability.md): the
   * alert and recording rules as a PrometheusRule and a ServiceMonitor scraping the gateway's
   * admin listener with its token (both need the Prometheus Operator's CRDs, e.g. from
   * kube-prometheus-stack), and the Grafana dashboard as a ConfigMap for Grafana's sidecar.
   */
  monitoring: decoded(z.strictObject({
    /** PrometheusRule + ServiceMonitor (monitoring.coreos.com/v1). Off: the cluster has no Prometheus Operator. */
    prometheusOperator: z.boolean().default(false),
    /** Labels the Prometheus's ruleSelector and serviceMonitorSelector match (kube-prometheus-stack: {release: <its release name>}). */
    selectorLabels: z.record(z.string(), z.string()).default({}),
    /** How often Prometheus scrapes each gateway's /metrics. */
    scrapeInterval: z.string().regex(/^\d+(s|m)$/, 'a Prometheus duration such as 30s').default('30s'),
    /** The dashboard (infra/observability/dashboard.json) as a ConfigMap the Grafana sidecar loads. */
    grafanaDashboard: z.boolean().default(true),
    /** The label the Grafana sidecar watches (kube-prometheus-stack's default: grafana_dashboard=1). */
    dashboardLabel: z.strictObject({ key: z.string().min(1), value: z.string() }).default({ key: 'grafana_dashboard', value: '1' }),
  })),
  /**
   * The semantic cache's production models (docs/caching.md): an embedding model and a
   * cross-encoder reranker, each served by vLLM on its own GPU on a semantic node group; the
   * rendered gateway config turns semantic lookups on and points them at both.
   */
  semanticCache: decoded(z.strictObject({
    enabled: z.boolean().default(false),
    /** One GPU per model replica: a one-GPU type (g6.xlarge: one L4). */
    instanceType: z.string().default('g6.xlarge'),
    embedding: z.strictObject({
      model: z.string().min(1).default('BAAI/bge-base-en-v1.5'),
      replicas: z.number().int().min(1).max(16).default(1),
      extraArgs: z.array(z.string()).default([]),
    }).prefault({}),
    reranker: z.strictObject({
      model: z.string().min(1).default('BAAI/bge-reranker-v2-m3'),
      replicas: z.number().int().min(1).max(16).default(1),
      extraArgs: z.array(z.string()).default([]),
      /** A candidate answer is served when the reranker scores the two prompts at least this. */
      minScore: z.number().min(0).max(1).default(0.5),
    }).prefault({}),
    /** Cosine similarity a candidate must reach before it is verified (the gateway's default when absent). */
    threshold: z.number().min(0).max(1).optional(),
  })),
})

type Parsed = z.output<typeof StackConfigSchema>
export type StackConfig = Readonly<Omit<Parsed, 'cacheAuthToken' | 'hfToken' | 'peerApiKey'>> & StackIdentity & {
  readonly hasCacheAuthToken: boolean
  readonly hasHfToken: boolean
  readonly hasPeerApiKey: boolean
}

/** Per-stage defaults: dev small and cheap, prod multi-AZ and sized for traffic. */
export const STAGE_DEFAULTS: Readonly<Record<Stage, Record<string, unknown>>> = {
  dev: {
    imagePlatforms: ['linux/amd64', 'linux/arm64'],
    gatewayInstanceType: 'c7gn.large', gatewayNodes: { min: 1, desired: 1, max: 2 }, gatewayReplicas: { min: 1, max: 2 },
    gatewayTargetCpu: 60, gatewayWorkers: 0,
    inferenceInstanceType: 'g6e.xlarge', inferenceNodes: { min: 1, desired: 1, max: 1 },
    model: 'meta-llama/Llama-3.1-8B-Instruct', vllmImage: 'vllm/vllm-openai:v0.11.0', vllmExtraArgs: [],
    pool: { connections: 16, warm: 2, keepAliveTimeoutMs: 4000, maxConnectionAgeMs: 300000 },
    timeouts: { connectMs: 2000, firstByteMs: 60000, idleMs: 60000, totalMs: 600000 },
    logLevel: 'debug',
    cacheNodeType: 'cache.t4g.small', cacheNodes: 1, cacheEngineVersion: '8.0', redisCommandTimeoutMs: 50,
    healthCheckIntervalSeconds: 30, healthCheckFailureThreshold: 3,
    fallbackUpstreams: [],
    vpc: { cidr: '10.40.0.0/16', azCount: 2, natGateways: 'single' },
    kubernetesVersion: DEFAULT_KUBERNETES_VERSION, clusterEndpointPublicCidrs: [], clusterEndpointPrivateCidrs: [],
    clusterAccess: { operatorRoleArns: [] }, loadBalancerSourceRanges: ['0.0.0.0/0'],
    busyPollMicros: 0, tags: {}, acceleratorTrafficDial: 100,
    apiKeys: [], gatewayDrainSeconds: 30, vllmStartupSeconds: 1200,
    monitoring: {}, semanticCache: {},
  },
  staging: {
    gatewayInstanceType: 'c7gn.xlarge', gatewayNodes: { min: 2, desired: 2, max: 4 }, gatewayReplicas: { min: 2, max: 4 },
    inferenceInstanceType: 'g6e.2xlarge', inferenceNodes: { min: 1, desired: 1, max: 2 },
    pool: { connections: 64, warm: 8, keepAliveTimeoutMs: 4000, maxConnectionAgeMs: 300000 },
    logLevel: 'info', cacheNodeType: 'cache.r7g.large', cacheNodes: 2,
    healthCheckIntervalSeconds: 30, busyPollMicros: 50,
    gatewayDrainSeconds: 120,
  },
  prod: {
    gatewayInstanceType: 'c7gn.16xlarge', gatewayNodes: { min: 3, desired: 3, max: 8 }, gatewayReplicas: { min: 3, max: 8 },
    gatewayTargetCpu: 50,
    inferenceInstanceType: 'g6e.12xlarge', inferenceNodes: { min: 2, desired: 2, max: 4 },
    pool: { connections: 256, warm: 32, keepAliveTimeoutMs: 4000, maxConnectionAgeMs: 300000 },
    logLevel: 'info', cacheNodeType: 'cache.r7g.xlarge', cacheNodes: 3,
    healthCheckIntervalSeconds: 10, healthCheckFailureThreshold: 3,
    vpc: { cidr: '10.40.0.0/16', azCount: 3, natGateways: 'perAz' },
    busyPollMicros: 50,
    gatewayDrainSeconds: 300, vllmStartupSeconds: 2400,
  },
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function tryJson(v: unknown): unknown {
  if (typeof v !== 'string') return v
  try { return JSON.parse(v) } catch { return v }
}

/** Stage defaults under user values; objects merge one level deep so `--path pool.warm` keeps the rest. */
function withDefaults(stage: Stage, user: Record<string, unknown>): Record<string, unknown> {
  const defaults: Record<string, unknown> = { ...STAGE_DEFAULTS.dev, ...(stage === 'dev' ? {} : STAGE_DEFAULTS.staging), ...(stage === 'prod' ? STAGE_DEFAULTS.prod : {}) }
  const out: Record<string, unknown> = { ...defaults }
  for (const [key, value] of Object.entries(user)) {
    const base = defaults[key]
    const parsed = tryJson(value)
    out[key] = isPlainObject(base) && isPlainObject(parsed) && key !== 'existingVpc' && key !== 'tags' ? { ...base, ...parsed } : value
  }
  return out
}

export class StackConfigError extends Error {
  readonly problems: readonly string[]
  constructor(stack: string, problems: readonly string[]) {
    super(`invalid stack config for "${stack}":\n  - ${problems.join('\n  - ')}`)
    this.name = 'StackConfigError'
    this.problems = problems
  }
}

/**
 * Validates the raw config of one stack. `raw` holds Pulumi's `project:key` strings
 * (`velox:gatewayInstanceType`, `aws:region`); keys of other namespaces are ignored. `today`
 * (ISO date) decides whether the cluster version is still in EKS standard support.
 */
export function parseStackConfig(stack: string, raw: Readonly<Record<string, string>>, today: string = new Date().toISOString().slice(0, 10)): StackConfig {
  const id = parseStackName(stack)
  const user: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(raw)) if (k.startsWith('velox:')) user[k.slice('velox:'.length)] = v
  const problems: string[] = []
  const awsRegion = raw['aws:region']
  if (awsRegion === undefined) problems.push(`aws:region: required; set it to ${id.region}`)
  else if (awsRegion !== id.region) problems.push(`aws:region: is "${awsRegion}" but the stack name says ${id.region}`)

  const result = StackConfigSchema.safeParse(withDefaults(id.stage, user))
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = `velox:${issue.path.map(String).join('.')}`
      const message = issue.code === 'invalid_type' && issue.input === undefined ? 'required' : issue.message
      problems.push(`${key}: ${message}`)
    }
    throw new StackConfigError(stack, problems)
  }
  const c = result.data
  const gatewayProblem = gatewayInstanceProblem(c.gatewayInstanceType)
  if (gatewayProblem) problems.push(`velox:gatewayInstanceType: ${gatewayProblem}; allowed: ${GATEWAY_INSTANCE_TYPES.join(', ')}`)
  const inferenceProblem = inferenceInstanceProblem(c.inferenceInstanceType)
  if (inferenceProblem) problems.push(`velox:inferenceInstanceType: ${inferenceProblem}; allowed: ${INFERENCE_INSTANCE_TYPES.join(', ')}`)
  if (!CACHE_NODE_TYPES.includes(c.cacheNodeType)) problems.push(`velox:cacheNodeType: unknown cache node type "${c.cacheNodeType}"; allowed: ${CACHE_NODE_TYPES.join(', ')}`)
  const gw = instanceType(c.gatewayInstanceType)
  if (gw && !c.imagePlatforms.includes(platformOf(gw.arch))) {
    problems.push(`velox:gatewayInstanceType: "${c.gatewayInstanceType}" is ${gw.arch} but velox:imagePlatforms is [${c.imagePlatforms.join(', ')}]; publish ${platformOf(gw.arch)} or pick a matching type`)
  }
  if (id.stage !== 'dev' && !DIGEST.test(c.gatewayImage)) problems.push(`velox:gatewayImage: ${id.stage} runs only images pinned by digest (repo@sha256:...), got "${c.gatewayImage}"`)
  if (id.stage === 'prod' && c.cacheNodes < 2) problems.push(`velox:cacheNodes: prod needs at least 2 nodes for Multi-AZ failover, got ${c.cacheNodes}`)
  if (id.stage === 'prod' && c.gatewayNodes.min < 2) problems.push(`velox:gatewayNodes.min: prod needs at least 2 gateway nodes, got ${c.gatewayNodes.min}`)
  const azCount = c.existingVpc ? c.existingVpc.privateSubnetIds.length : c.vpc.azCount
  if (id.stage === 'prod' && azCount < 3) problems.push(`velox:vpc.azCount: prod spreads compute over at least 3 AZs, got ${azCount}`)
  if (id.stage !== 'dev' && c.gatewayNodes.min < azCount) problems.push(`velox:gatewayNodes.min: ${c.gatewayNodes.min} cannot keep a gateway node in each of the ${azCount} AZs; use at least ${azCount}`)
  if (c.gatewayReplicas.max > c.gatewayNodes.max) problems.push(`velox:gatewayReplicas.max: ${c.gatewayReplicas.max} exceeds velox:gatewayNodes.max ${c.gatewayNodes.max} (host networking runs one gateway per node)`)
  const inf = instanceType(c.inferenceInstanceType)
  if (inf && c.inferenceNodes.desired === 0) problems.push('velox:inferenceNodes.desired: at least one inference node is needed to serve the model')
  for (const [i, url] of c.fallbackUpstreams.entries()) {
    if (new URL(url).hostname === c.domain) problems.push(`velox:fallbackUpstreams.${i}: "${url}" is the latency-routed name, which resolves back to this region; use a peer's regional name such as https://<region>.${c.domain}`)
  }
  for (const [i, c0] of c.clusterEndpointPublicCidrs.entries()) {
    const p = publicCidrProblem(c0)
    if (p) problems.push(`velox:clusterEndpointPublicCidrs.${i}: ${p}`)
  }
  for (const [i, c0] of c.clusterEndpointPrivateCidrs.entries()) {
    const p = privateCidrProblem(c0)
    if (p) problems.push(`velox:clusterEndpointPrivateCidrs.${i}: ${p}`)
  }
  const principals = [c.clusterAccess.deployRoleArn, ...(c.clusterAccess.previewRoleArn ? [c.clusterAccess.previewRoleArn] : []), ...c.clusterAccess.operatorRoleArns]
  const seen = new Set<string>()
  for (const arn of principals) {
    if (seen.has(arn)) problems.push(`velox:clusterAccess: ${arn} is listed twice; EKS allows one access entry per principal`)
    seen.add(arn)
  }
  if (id.stage !== 'dev' && c.apiKeys.length === 0) problems.push(`velox:apiKeys: ${id.stage} serves the internet and needs at least one client API key ({name, tenant, hash}; hash with node gateway/src/auth/hash-key.ts)`)
  const versionProblem = eksVersionProblem(c.kubernetesVersion, today)
  if (versionProblem) problems.push(`velox:kubernetesVersion: ${versionProblem}`)
  if (c.globalStack && c.globalStack.split('/').pop() !== `${id.stage}-global`) problems.push(`velox:globalStack: "${c.globalStack}" is not this stage's global stack (${id.stage}-global)`)
  if (c.semanticCache.enabled) {
    const semanticProblem = inferenceInstanceProblem(c.semanticCache.instanceType)
    const semantic = instanceType(c.semanticCache.instanceType)
    if (semanticProblem) problems.push(`velox:semanticCache.instanceType: ${semanticProblem}; allowed: ${INFERENCE_INSTANCE_TYPES.join(', ')}`)
    else if (semantic && semantic.gpus !== 1) problems.push(`velox:semanticCache.instanceType: "${c.semanticCache.instanceType}" has ${semantic.gpus} GPUs; each model replica gets one GPU node, so pick a one-GPU type (g6.xlarge, g6e.xlarge...)`)
  }
  if (c.existingVpc && user['vpc'] !== undefined) problems.push('velox:vpc: set either velox:vpc (new VPC) or velox:existingVpc, not both')
  if (problems.length > 0) throw new StackConfigError(stack, problems)

  const { cacheAuthToken, hfToken, peerApiKey, ...rest } = c
  return Object.freeze({ ...rest, ...id, hasCacheAuthToken: cacheAuthToken !== undefined, hasHfToken: hfToken !== undefined, hasPeerApiKey: peerApiKey !== undefined })
}
