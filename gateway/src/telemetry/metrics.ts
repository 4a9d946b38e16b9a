/**
 * Prometheus metrics. Label children are resolved once and cached, so recording a request costs
 * a few map lookups and additions, no label hashing or string building in prom-client.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import { FastCounter, FastHistogram, type CounterCell, type HistogramCell } from './cells.ts'
import { droppedLogLines } from './logger.ts'

/** Sub-millisecond resolution where the gateway's own time lives, coarser for upstream time (seconds). */
const ADDED_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.05]
const UPSTREAM_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** OpenTelemetry GenAI semantic-convention bucket advice, with finer steps below 10 ms for fast models. */
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5]
const TOKENS_PER_SECOND_BUCKETS = [1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000]

/** gen_ai.operation.name per endpoint (OpenTelemetry GenAI conventions). */
export const GEN_AI_OPERATION: Readonly<Record<string, string>> = Object.freeze({
  'chat.completions': 'chat',
  completions: 'text_completion',
  embeddings: 'embeddings',
  responses: 'chat',
  messages: 'chat',
})

/** The per-model generation histograms of one (operation, model): resolved once, kept. */
export interface GenerationCells {
  readonly ttft: HistogramCell
  readonly tpot: HistogramCell
  readonly tokensPerSecond: HistogramCell
}

/** What the per-member gauges read at scrape time (the routing members of the live snapshot). */
export interface MemberView {
  readonly name: string
  readonly upstreamName: string
  readonly inFlight: number
  readonly healthy: boolean
  readonly failed: number
  readonly ewma: { get(nowMs: number): number }
  readonly breaker: { readonly state: number; readonly ejections: number }
  readonly upstream: { stats(): { connected: number; free: number; pending: number; running: number } }
}

/** The inner map under `key`, created on first use. */
function child<K, M extends Map<unknown, unknown>>(map: Map<K, M>, key: K): M {
  let next = map.get(key)
  if (next === undefined) map.set(key, (next = new Map() as M))
  return next
}

export class GatewayMetrics {
  readonly registry: Registry
  readonly requests: FastCounter
  readonly added: FastHistogram
  readonly upstreamFirstByte: FastHistogram
  readonly duration: FastHistogram
  readonly tokens: FastCounter
  readonly upstreamErrors: Counter<'upstream' | 'code'>
  readonly pool: Gauge<'upstream' | 'state'>
  readonly configReloads: Counter<'result'>
  readonly configGeneration: Gauge
  /** route -> model label -> upstream -> status -> cell: four lookups, no key string built per request. */
  private readonly requestCells = new Map<string, Map<string, Map<string, Map<number, CounterCell>>>>()
  private readonly addedCells = new Map<string, HistogramCell>()
  private readonly durationCells = new Map<string, HistogramCell>()
  private readonly firstByteCells = new Map<string, HistogramCell>()
  private readonly tokenCells = new Map<string, { prompt: CounterCell; completion: CounterCell }>()
  readonly retries: Counter<'upstream' | 'kind'>
  readonly queueRejected: Counter<'upstream' | 'reason'>
  readonly broken: Counter<'route' | 'upstream' | 'code'>
  readonly hedges: Counter<'outcome'>
  readonly memberGauges: readonly Gauge<'member' | 'upstream'>[]
  readonly timeToFirstToken: FastHistogram
  readonly timePerOutputToken: FastHistogram
  readonly outputTokensPerSecond: FastHistogram
  /** Models served (configured names, aliases, what `"*"` upstreams listed at warm-up): the only values the per-model GenAI histograms carry. */
  private configuredModels: () => ReadonlySet<string> = () => new Set()
  private readonly generationCells = new Map<string, Map<string, GenerationCells>>()
  private memberSource: (() => readonly MemberView[]) | null = null
  /** The model ids the config serves (and `"*"` upstreams listed): always their own label. */
  private knownModels: (() => ReadonlySet<string>) | null = null

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry()
    this.registry = registry
    // The event-loop delay monitor wakes the loop at its precision; prom-client's default of 10 ms
    // measurably lengthened the request-latency tail, 100 ms does not.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 })
    // The request-path metrics are cells (see cells.ts): recording allocates nothing.
    const fast = <M extends FastCounter | FastHistogram>(m: M): M => {
      registry.registerMetric(m as unknown as Metric)
      return m
    }
    this.requests = fast(new FastCounter({
      name: 'velox_requests_total',
      help: 'Requests answered, by route, public model, upstream and HTTP status',
      labelNames: ['route', 'model', 'upstream', 'status'],
    }))
    this.added = fast(new FastHistogram({
      name: 'velox_gateway_added_seconds',
      help: "Time the gateway itself adds before the response's first byte (excludes upstream time)",
      labelNames: ['route'],
      buckets: ADDED_BUCKETS,
    }))
    this.upstreamFirstByte = fast(new FastHistogram({
      name: 'velox_upstream_first_byte_seconds',
      help: 'Upstream time to first byte: response headers, or the first event of a stream',
      labelNames: ['upstream'],
      buckets: UPSTREAM_BUCKETS,
    }))
    this.duration = fast(new FastHistogram({
      name: 'velox_request_duration_seconds',
      help: 'Whole request duration as seen by the gateway, streams included',
      labelNames: ['route'],
      buckets: UPSTREAM_BUCKETS,
    }))
    this.timeToFirstToken = fast(new FastHistogram({
      name: 'gen_ai_server_time_to_first_token_seconds',
      help: 'OpenTelemetry gen_ai.server.time_to_first_token: request received to the first streamed token sent, for successful streams',
      labelNames: ['gen_ai_operation_name', 'gen_ai_request_model'],
      buckets: TTFT_BUCKETS,
    }))
    this.timePerOutputToken = fast(new FastHistogram({
      name: 'gen_ai_server_time_per_output_token_seconds',
      help: 'OpenTelemetry gen_ai.server.time_per_output_token: time between output tokens after the first (inter-token latency), for successful streams with usage',
      labelNames: ['gen_ai_operation_name', 'gen_ai_request_model'],
      buckets: TPOT_BUCKETS,
    }))
    this.outputTokensPerSecond = fast(new FastHistogram({
      name: 'velox_output_tokens_per_second',
      help: 'Output tokens per second of one successful stream after its first token',
      labelNames: ['gen_ai_operation_name', 'gen_ai_request_model'],
      buckets: TOKENS_PER_SECOND_BUCKETS,
    }))
    this.tokens = fast(new FastCounter({
      name: 'velox_tokens_total',
      help: 'Tokens reported in upstream usage blocks (streamed usage included), by kind',
      labelNames: ['model', 'kind'],
    }))
    this.upstreamErrors = new Counter({
      name: 'velox_upstream_errors_total',
      help: 'Upstream transport failures and timeouts, by upstream (never the member: DNS discovery makes those unbounded) and gateway error code',
      labelNames: ['upstream', 'code'],
      registers: [registry],
    })
    this.configReloads = new Counter({
      name: 'velox_config_reloads_total',
      help: 'Config reloads, by result: applied, or rejected (the running config stayed in force)',
      labelNames: ['result'],
      registers: [registry],
    })
    new Counter({
      name: 'velox_log_lines_dropped_total',
      help: 'Log lines this process did not write, by reason: full (its stdout took nothing while 16 MiB waited) or gone (its stdout failed, as when the reader exits)',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        const { full, gone } = droppedLogLines()
        this.reset()
        this.inc({ reason: 'full' }, full)
        this.inc({ reason: 'gone' }, gone)
      },
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
          const s = m.upstream.stats()
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
    this.queueRejected = new Counter({
      name: 'velox_upstream_queue_rejected_total',
      help: 'Requests an upstream could not take: its connections busy and its queue full (full), the wait for a connection past pool.queueTimeoutMs (timeout), or a waiter whose place a more important priority class took (preempted). Each failed over or got 503 GW_ERR_UPSTREAM_OVERLOADED',
      labelNames: ['upstream', 'reason'],
      registers: [registry],
    })
    this.broken = new Counter({
      name: 'velox_responses_broken_total',
      help: 'Responses that failed after they started (the client already had its status, counted as such in velox_requests_total): a stream ended by an error event, or a body cut short, by gateway error code',
      labelNames: ['route', 'upstream', 'code'],
      registers: [registry],
    })
    this.hedges = new Counter({
      name: 'velox_hedges_total',
      help: 'Hedged attempts: sent, and for races that finished, whether the hedge won or lost',
      labelNames: ['outcome'],
      registers: [registry],
    })
    // One gauge per quantity (units never mix behind one name), all read at scrape time.
    const memberGauge = (name: string, help: string, read: (m: MemberView, now: number) => number): Gauge<'member' | 'upstream'> =>
      new Gauge({
        name,
        help,
        labelNames: ['member', 'upstream'],
        registers: [registry],
        collect() {
          this.reset()
          const now = performance.now()
          for (const m of self.memberSource?.() ?? []) this.set({ member: m.name, upstream: m.upstreamName }, read(m, now))
        },
      })
    this.memberGauges = [
      memberGauge('velox_upstream_member_healthy', 'Per routing member: 1 while active health checks pass, else 0', (m) => (m.healthy ? 1 : 0)),
      memberGauge('velox_upstream_member_breaker_state', 'Per routing member: breaker state, 0 closed, 1 open (ejected), 2 half-open', (m) => m.breaker.state),
      memberGauge('velox_upstream_member_ewma_seconds', 'Per routing member: peak-EWMA time to first byte', (m, now) => m.ewma.get(now) / 1000),
      memberGauge('velox_upstream_member_outstanding', 'Per routing member: attempts in flight', (m) => m.inFlight),
      memberGauge('velox_upstream_member_failures', 'Per routing member: failed attempts since the routing snapshot was built', (m) => m.failed),
      memberGauge('velox_upstream_member_ejections', 'Per routing member: consecutive ejections since the doubling last reset', (m) => m.breaker.ejections),
    ]
  }

  setMemberSource(source: (() => readonly MemberView[]) | null): void {
    this.memberSource = source
  }

  setKnownModels(source: (() => ReadonlySet<string>) | null): void {
    this.knownModels = source
  }

  countRetry(upstream: string, kind: string): void {
    this.retries.inc({ upstream, kind })
  }

  countQueueRejected(upstream: string, reason: 'full' | 'timeout' | 'preempted'): void {
    this.queueRejected.inc({ upstream, reason })
  }

  countBroken(route: string, upstream: string, code: string): void {
    this.broken.inc({ route, upstream, code })
  }

  countHedge(outcome: 'sent' | 'won' | 'lost'): void {
    this.hedges.inc({ outcome })
  }

  /**
   * The label value for a model: itself when the gateway serves it (configured, an alias, or listed
   * by a `"*"` upstream at warm-up), else `other`. Labels and the cell maps below are keyed by this
   * value, so no name only a client chose becomes a label or grows memory.
   */
  modelLabel(model: string): string {
    return this.knownModels?.().has(model) === true ? model : 'other'
  }

  countRequest(route: string, model: string, upstream: string, status: number): void {
    const byModel = child(this.requestCells, route)
    const byUpstream = child(byModel, this.modelLabel(model))
    const byStatus = child(byUpstream, upstream)
    let cell = byStatus.get(status)
    if (cell === undefined) {
      cell = this.requests.cell(route, this.modelLabel(model), upstream, String(status))
      byStatus.set(status, cell)
    }
    cell.inc()
  }

  observeAdded(route: string, seconds: number): void {
    let cell = this.addedCells.get(route)
    if (cell === undefined) this.addedCells.set(route, (cell = this.added.cell(route)))
    cell.observe(seconds)
  }

  observeDuration(route: string, seconds: number): void {
    let cell = this.durationCells.get(route)
    if (cell === undefined) this.durationCells.set(route, (cell = this.duration.cell(route)))
    cell.observe(seconds)
  }

  observeFirstByte(upstream: string, seconds: number): void {
    let cell = this.firstByteCells.get(upstream)
    if (cell === undefined) this.firstByteCells.set(upstream, (cell = this.upstreamFirstByte.cell(upstream)))
    cell.observe(seconds)
  }

  countTokens(model: string, prompt: number, completion: number): void {
    const label = this.modelLabel(model)
    let cells = this.tokenCells.get(label)
    if (cells === undefined) {
      cells = { prompt: this.tokens.cell(label, 'prompt'), completion: this.tokens.cell(label, 'completion') }
      this.tokenCells.set(label, cells)
    }
    if (prompt > 0) cells.prompt.inc(prompt)
    if (completion > 0) cells.completion.inc(completion)
  }

  /** The served models (set at boot and every reload): per-model GenAI histograms carry only these, others are `other`. */
  setConfiguredModels(models: () => ReadonlySet<string>): void {
    this.configuredModels = models
    this.generationCells.clear()
  }

  /** The generation histograms for (operation, public model); cache the result per call site if hot. */
  generation(operation: string, model: string): GenerationCells {
    let byModel = this.generationCells.get(operation)
    if (byModel === undefined) this.generationCells.set(operation, (byModel = new Map()))
    let cells = byModel.get(model)
    if (cells === undefined) {
      const label = this.configuredModels().has(model) ? model : 'other'
      cells = {
        ttft: this.timeToFirstToken.cell(operation, label),
        tpot: this.timePerOutputToken.cell(operation, label),
        tokensPerSecond: this.outputTokensPerSecond.cell(operation, label),
      }
      byModel.set(model, cells)
    }
    return cells
  }

  /**
   * One finished stream: time to first token, and when the output token count is known, the
   * time per output token after the first and the stream's tokens per second.
   */
  observeGeneration(operation: string, model: string, ttftSeconds: number, afterFirstSeconds: number, outputTokens: number): void {
    const cells = this.generation(operation, model)
    cells.ttft.observe(ttftSeconds)
    if (outputTokens > 1 && afterFirstSeconds > 0) {
      cells.tpot.observe(afterFirstSeconds / (outputTokens - 1))
      cells.tokensPerSecond.observe((outputTokens - 1) / afterFirstSeconds)
    }
  }

  countUpstreamError(upstream: string, code: string): void {
    this.upstreamErrors.inc({ upstream, code })
  }
}
