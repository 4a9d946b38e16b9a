/**
 * Prometheus metrics. Label children are resolved once and cached, so recording a request costs
 * a few map lookups and additions, no label hashing or string building in prom-client.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Sub-millisecond resolution where the gateway's own time lives, coarser for upstream time (seconds). */
const ADDED_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.05]
const UPSTREAM_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** Distinct model label values kept before new ones are folded into `other` (wildcard upstreams). */
const MAX_MODEL_LABELS = 256

/** What the per-member gauges read at scrape time (the routing members of the live snapshot). */
export interface MemberView {
  readonly name: string
  readonly upstreamName: string
  readonly outstanding: number
  readonly healthy: boolean
  readonly failed: number
  readonly ewma: { get(nowMs: number): number }
  readonly breaker: { readonly state: number; readonly ejections: number }
  readonly dispatcher: { stats(): { connected: number; free: number; pending: number; running: number } }
}

export class GatewayMetrics {
  readonly registry: Registry
  readonly requests: Counter<'route' | 'model' | 'upstream' | 'status'>
  readonly added: Histogram<'route'>
  readonly upstreamFirstByte: Histogram<'upstream'>
  readonly duration: Histogram<'route'>
  readonly tokens: Counter<'model' | 'kind'>
  readonly upstreamErrors: Counter<'upstream' | 'code'>
  readonly pool: Gauge<'upstream' | 'state'>
  readonly configReloads: Counter<'result'>
  readonly configGeneration: Gauge
  private readonly requestChildren = new Map<string, { inc(v?: number): void }>()
  private readonly addedChildren = new Map<string, { observe(v: number): void }>()
  private readonly durationChildren = new Map<string, { observe(v: number): void }>()
  private readonly firstByteChildren = new Map<string, { observe(v: number): void }>()
  private readonly models = new Set<string>()
  readonly retries: Counter<'upstream' | 'kind'>
  readonly hedges: Counter<'outcome'>
  readonly memberState: Gauge<'member' | 'upstream' | 'metric'>
  private memberSource: (() => readonly MemberView[]) | null = null

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry()
    this.registry = registry
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
    this.requests = new Counter({
      name: 'velox_requests_total',
      help: 'Requests answered, by route, public model, upstream and HTTP status',
      labelNames: ['route', 'model', 'upstream', 'status'],
      registers: [registry],
    })
    this.added = new Histogram({
      name: 'velox_gateway_added_seconds',
      help: "Time the gateway itself adds before the response's first byte (excludes upstream time)",
      labelNames: ['route'],
      buckets: ADDED_BUCKETS,
      registers: [registry],
    })
    this.upstreamFirstByte = new Histogram({
      name: 'velox_upstream_first_byte_seconds',
      help: 'Upstream time to first byte: response headers, or the first event of a stream',
      labelNames: ['upstream'],
      buckets: UPSTREAM_BUCKETS,
      registers: [registry],
    })
    this.duration = new Histogram({
      name: 'velox_request_duration_seconds',
      help: 'Whole request duration as seen by the gateway, streams included',
      labelNames: ['route'],
      buckets: UPSTREAM_BUCKETS,
      registers: [registry],
    })
    this.tokens = new Counter({
      name: 'velox_tokens_total',
      help: 'Tokens reported in upstream usage blocks (streamed usage included), by kind',
      labelNames: ['model', 'kind'],
      registers: [registry],
    })
    this.upstreamErrors = new Counter({
      name: 'velox_upstream_errors_total',
      help: 'Upstream transport failures and timeouts, by gateway error code',
      labelNames: ['upstream', 'code'],
      registers: [registry],
    })
    this.configReloads = new Counter({
      name: 'velox_config_reloads_total',
      help: 'Config reloads, by result: applied, or rejected (the running config stayed in force)',
      labelNames: ['result'],
      registers: [registry],
    })
    this.configGeneration = new Gauge({
      name: 'velox_config_generation',
      help: 'Generation of the config in force: 1 at boot, +1 per applied reload',
      registers: [registry],
    })
    const self = this
    this.pool = new Gauge({
      name: 'velox_pool_connections',
      help: 'Upstream pool connections by state (connected, free, busy) and queued requests (pending)',
      labelNames: ['upstream', 'state'],
      registers: [registry],
      collect() {
        this.reset()
        for (const m of self.memberSource?.() ?? []) {
          const s = m.dispatcher.stats()
          this.inc({ upstream: m.upstreamName, state: 'connected' }, s.connected)
          this.inc({ upstream: m.upstreamName, state: 'free' }, s.free)
          this.inc({ upstream: m.upstreamName, state: 'busy' }, s.running)
          this.inc({ upstream: m.upstreamName, state: 'pending' }, s.pending)
        }
      },
    })
    this.retries = new Counter({
      name: 'velox_retries_total',
      help: 'Attempts sent again after a failure before the first byte, by the upstream retried on and the failure kind',
      labelNames: ['upstream', 'kind'],
      registers: [registry],
    })
    this.hedges = new Counter({
      name: 'velox_hedges_total',
      help: 'Hedged attempts: sent, and for races that finished, whether the hedge won or lost',
      labelNames: ['outcome'],
      registers: [registry],
    })
    this.memberState = new Gauge({
      name: 'velox_upstream_member',
      help: 'Per routing member: healthy (active checks, 1/0), breaker (0 closed, 1 open, 2 half-open), ewma_seconds (peak-EWMA time to first byte), outstanding, failures and ejections (counts since the snapshot was built)',
      labelNames: ['member', 'upstream', 'metric'],
      registers: [registry],
      collect() {
        this.reset()
        const now = performance.now()
        for (const m of self.memberSource?.() ?? []) {
          const labels = { member: m.name, upstream: m.upstreamName }
          this.set({ ...labels, metric: 'healthy' }, m.healthy ? 1 : 0)
          this.set({ ...labels, metric: 'breaker' }, m.breaker.state)
          this.set({ ...labels, metric: 'ewma_seconds' }, m.ewma.get(now) / 1000)
          this.set({ ...labels, metric: 'outstanding' }, m.outstanding)
          this.set({ ...labels, metric: 'failures' }, m.failed)
          this.set({ ...labels, metric: 'ejections' }, m.breaker.ejections)
        }
      },
    })
  }

  setMemberSource(source: (() => readonly MemberView[]) | null): void {
    this.memberSource = source
  }

  countRetry(upstream: string, kind: string): void {
    this.retries.inc({ upstream, kind })
  }

  countHedge(outcome: 'sent' | 'won' | 'lost'): void {
    this.hedges.inc({ outcome })
  }

  /** The label value for a model: itself, or `other` once too many distinct ones were seen. */
  modelLabel(model: string): string {
    if (this.models.has(model)) return model
    if (this.models.size >= MAX_MODEL_LABELS) return 'other'
    this.models.add(model)
    return model
  }

  countRequest(route: string, model: string, upstream: string, status: number): void {
    const key = `${route}\u0001${model}\u0001${upstream}\u0001${status}`
    let child = this.requestChildren.get(key)
    if (child === undefined) {
      child = this.requests.labels(route, this.modelLabel(model), upstream, String(status))
      this.requestChildren.set(key, child)
    }
    child.inc()
  }

  observeAdded(route: string, seconds: number): void {
    let child = this.addedChildren.get(route)
    if (child === undefined) {
      child = this.added.labels(route)
      this.addedChildren.set(route, child)
    }
    child.observe(seconds)
  }

  observeDuration(route: string, seconds: number): void {
    let child = this.durationChildren.get(route)
    if (child === undefined) {
      child = this.duration.labels(route)
      this.durationChildren.set(route, child)
    }
    child.observe(seconds)
  }

  observeFirstByte(upstream: string, seconds: number): void {
    let child = this.firstByteChildren.get(upstream)
    if (child === undefined) {
      child = this.upstreamFirstByte.labels(upstream)
      this.firstByteChildren.set(upstream, child)
    }
    child.observe(seconds)
  }

  countTokens(model: string, prompt: number, completion: number): void {
    const m = this.modelLabel(model)
    if (prompt > 0) this.tokens.inc({ model: m, kind: 'prompt' }, prompt)
    if (completion > 0) this.tokens.inc({ model: m, kind: 'completion' }, completion)
  }

  countUpstreamError(upstream: string, code: string): void {
    this.upstreamErrors.inc({ upstream, code })
  }
}
