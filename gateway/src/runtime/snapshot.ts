/**
 * The runtime snapshot: everything the request path needs, compiled once from a validated config
 * and never mutated afterwards except by DNS discovery (copy-on-write member lists): the router
 * with one member (and one warmed undici pool) per upstream or discovered address, the
 * authenticator, the serialized /v1/models body. A config reload builds a new snapshot and swaps
 * the reference; in-flight calls keep the one they started on.
 */
import { Authenticator, type Principal } from '../auth/authenticator.ts'
import type { ApiKeyConfig } from '../auth/config.ts'
import { classShares, type Limiter, type Tenancy } from '../limits/index.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { bindDnsDiscovery, type DnsBinding } from '../routing/dns-binding.ts'
import { ActiveHealthChecker } from '../routing/health-checker.ts'
import { Member } from '../routing/member.ts'
import { loopStalls } from '../routing/loop-stalls.ts'
import { PodMetricsScraper } from '../routing/pod-metrics-scraper.ts'
import { Router, type Resolution } from '../routing/router.ts'
import { PoolSizer } from '../upstream/pool-sizer.ts'
import { Upstream } from '../upstream/upstream.ts'
import type { Logger } from '../telemetry/logger.ts'

/** `C` is what the request path builds once per snapshot (its call context); the snapshot only holds it. */
export interface SnapshotDeps<C> {
  env: NodeJS.ProcessEnv
  logger: Logger
  buildContext(snapshot: RuntimeSnapshot<C>): C
  /** The limit store and usage ledger, shared by every snapshot. */
  tenancy: Tenancy
  /** The keys of `auth.keysFile` as last loaded. */
  fileKeys: readonly ApiKeyConfig[]
}

export class RuntimeSnapshot<C = unknown> {
  readonly config: GatewayConfig
  readonly router: Router<Upstream>
  readonly auth: Authenticator
  /** This config's limit rules over the shared store. */
  readonly limits: Limiter
  /** Requests are metered (limits and usage) when keys or limits are configured. */
  readonly metered: boolean
  /**
   * Every request's whole body is read (metering's cost estimate, the prompt's prefix blocks for
   * inference-aware routing): the body is parsed at once instead of scanned first and parsed after.
   */
  readonly readsWholeBody: boolean
  /** `GET /v1/models`: configured models and aliases, plus what `"*"` upstreams list (after warm-up). */
  modelsBody: string
  modelIds: ReadonlySet<string>
  /** `GET /v1/models` for keys limited to some models, built on first use per key. */
  private modelsBodies: WeakMap<Principal, string>
  private modelsCreated: number
  readonly ctx: C
  private readonly logger: Logger
  private readonly health: ActiveHealthChecker<Upstream> | null
  /** Reads vLLM's queue and KV gauges from every member (inference-aware balancer only). */
  private readonly podMetrics: PodMetricsScraper<Upstream> | null
  /** This snapshot holds the event-loop stall monitor (inference-aware: pace samples discount stalls). */
  private watchingStalls = false
  /** Opens connections ahead of demand; fed by the request path's `member.onStart`. */
  readonly sizer: PoolSizer
  /** Null until start(): discovery resolves names, which is I/O. */
  private dns: DnsBinding | null
  private closed: boolean
  /** Calls running on this snapshot (started, not finished). */
  private inFlight: number
  private idle: (() => void) | null

  constructor(config: GatewayConfig, deps: SnapshotDeps<C>) {
    this.config = config
    this.logger = deps.logger
    this.closed = false
    this.inFlight = 0
    this.idle = null
    this.dns = null
    this.auth = new Authenticator(config.auth, deps.fileKeys)
    this.limits = deps.tenancy.limiter(config.limits)
    this.metered = this.auth.enabled || this.limits.enabled
    const weights = config.routing.inferenceAware.weights
    this.readsWholeBody = this.metered || (config.routing.balancer === 'inference-aware' && (weights.prefix > 0 || weights.prefill > 0))
    const byName = new Map(config.upstreams.map((u) => [u.name, u]))
    const now = performance.now()
    const queueShares = classShares(config.limits.queueShares)
    this.router = new Router<Upstream>(config.upstreams, config.routing, {
      nowMs: now,
      queueShares,
      createMember: (init) => new Member(init, new Upstream(byName.get(init.upstreamName)!, deps.env, init.origin, queueShares)),
    })
    this.modelIds = new Set()
    this.modelsBody = ''
    this.modelsBodies = new WeakMap()
    this.modelsCreated = 0
    this.setModels(this.router.models())
    this.sizer = new PoolSizer(() => this.router.members())
    this.ctx = deps.buildContext(this)

    const { health } = config.routing
    this.health =
      health.intervalMs > 0
        ? new ActiveHealthChecker<Upstream>({
            members: () => this.router.members(),
            probe: probeMember(health.activePath),
            intervalMs: health.intervalMs,
            timeoutMs: health.timeoutMs,
            healthyThreshold: health.healthyThreshold,
            unhealthyThreshold: health.unhealthyThreshold,
            onChange: (member, healthy) => this.logger.warn({ member: member.name, healthy }, healthy ? 'upstream member healthy again' : 'upstream member failed its health checks'),
          })
        : null
    const ia = config.routing.inferenceAware
    this.podMetrics =
      config.routing.balancer === 'inference-aware' && ia.metrics.enabled
        ? new PodMetricsScraper<Upstream>({
            members: () => this.router.members(),
            fetch: fetchMetrics(ia.metrics.path),
            intervalMs: ia.metrics.intervalMs,
            timeoutMs: ia.metrics.timeoutMs,
            onRound: () => this.router.releaseHeld(performance.now()),
          })
        : null
  }

  private bindDns(): DnsBinding {
    return bindDnsDiscovery(this.router, {
      onAdded: (member) => {
        this.logger.info({ member: member.name }, 'DNS discovery: member added')
        void member.upstream.warm().catch(() => 0)
      },
      onRemoved: (member) => {
        this.logger.info({ member: member.name }, 'DNS discovery: member removed; draining')
        // undici's close lets in-flight requests finish first.
        void member.upstream.close().catch(() => member.upstream.destroy())
      },
      onError: (upstream, err) => this.logger.warn({ upstream, err: (err as Error).message }, 'DNS discovery failed; keeping the last known addresses'),
    })
  }

  private setModels(ids: Iterable<string>): void {
    const sorted = [...new Set(ids)].sort()
    const created = Math.floor(Date.now() / 1000)
    this.modelIds = new Set(sorted)
    this.modelsCreated = created
    this.modelsBody = JSON.stringify({ object: 'list', data: sorted.map((id) => ({ id, object: 'model', created, owned_by: 'velox' })) })
    this.modelsBodies = new WeakMap()
  }

  /**
   * Whether `principal` may see the model `id` here: the gateway serves it (listed, or routable
   * through a `"*"` upstream for a key that names it) and the key may use it.
   */
  modelVisible(principal: Principal, id: string): boolean {
    if (principal.models === null) return this.modelIds.has(id)
    return principal.models.has(id) && (this.modelIds.has(id) || this.resolve(id) !== null)
  }

  /** `GET /v1/models` as `principal` sees it: every served model, or those its key may use. */
  modelsBodyFor(principal: Principal): string {
    if (principal.models === null) return this.modelsBody
    let body = this.modelsBodies.get(principal)
    if (body === undefined) {
      const created = this.modelsCreated
      const ids = [...principal.models].filter((id) => this.modelVisible(principal, id)).sort()
      body = JSON.stringify({ object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'velox' })) })
      this.modelsBodies.set(principal, body)
    }
    return body
  }

  /**
   * A `"*"` upstream serves whatever it has loaded; ask it (its own `/v1/models`) so that clients
   * listing models see them. Best effort: an upstream without the endpoint adds nothing.
   */
  private async discoverWildcardModels(): Promise<void> {
    const found: string[] = []
    const seen = new Set<string>()
    for (const member of this.router.members()) {
      const up = member.upstream
      if (!up.config.models.includes('*') || seen.has(up.name)) continue
      seen.add(up.name)
      try {
        const res = await up.request({ path: `${up.basePath}/v1/models`, method: 'GET', signal: AbortSignal.timeout(2_000) })
        const body = (await res.body.json()) as { data?: Array<{ id?: unknown }> }
        if (res.statusCode === 200 && Array.isArray(body.data)) for (const d of body.data) if (typeof d.id === 'string') found.push(d.id)
      } catch {
        // Not every OpenAI-compatible server lists its models; routing does not depend on it.
      }
    }
    if (found.length > 0) this.setModels([...this.router.models(), ...found])
  }

  /** The route for a public model id, or null when no upstream serves it. */
  resolve(model: string): Resolution<Upstream> | null {
    return this.router.resolve(model)
  }

  /** Members that are other gateways; a fresh set each call (the caller adds to it). Null when none. */
  peerMembers(): Set<Member<Upstream>> | null {
    let peers: Set<Member<Upstream>> | null = null
    for (const m of this.router.members()) if (m.upstream.config.peer) (peers ??= new Set()).add(m)
    return peers
  }

  /**
   * For /readyz: this region can serve a request with its own upstreams. Peers (other regions'
   * gateways) are left out: two regions that both lost their inference would otherwise stay
   * "ready" for each other. A gateway configured with peers only counts them.
   */
  anyAvailable(): boolean {
    const now = performance.now()
    let local = false
    for (const member of this.router.members()) {
      if (member.upstream.config.peer) continue
      local = true
      if (member.available(now)) return true
    }
    return !local && this.router.anyAvailable(now)
  }

  /**
   * Starts the background work: DNS discovery and its first resolution, then the configured warm
   * connections on every pool, then pool sizing and active health checks. Resolves to how many
   * members answered (or need no warm-up). Call once.
   */
  async start(): Promise<number> {
    if (this.closed) return 0
    this.dns = this.bindDns()
    await this.dns.ready
    const members = this.router.members()
    const results = await Promise.all(members.map((m) => m.upstream.warm(healthPath(m.upstream, this.config.routing.health.activePath)).catch(() => 0)))
    if (!this.closed) {
      this.sizer.start()
      this.health?.start()
      this.podMetrics?.start()
      this.limits.start()
      if (this.config.routing.balancer === 'inference-aware' && !this.watchingStalls) {
        this.watchingStalls = true
        loopStalls.acquire()
      }
    }
    await this.discoverWildcardModels()
    // Readiness counts the region's own upstreams; peers only when there is nothing else.
    const hasLocal = members.some((m) => !m.upstream.config.peer)
    return results.filter((n, i) => (n > 0 || members[i]!.upstream.config.pool.warm === 0) && (!hasLocal || !members[i]!.upstream.config.peer)).length
  }

  track(delta: 1 | -1): void {
    this.inFlight += delta
    if (this.inFlight === 0 && this.idle !== null) this.idle()
  }

  /**
   * For a snapshot replaced by a reload: background work stops now; the pools close once the
   * calls still running on it (streams included) are done, since those may still fail over.
   */
  async closeWhenIdle(): Promise<void> {
    this.closed = true
    this.sizer.stop()
    this.health?.stop()
    this.podMetrics?.stop()
    this.stopWatchingStalls()
    this.router.endHolds(true)
    this.dns?.stop()
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve))
    await this.close()
  }

  private stopWatchingStalls(): void {
    if (!this.watchingStalls) return
    this.watchingStalls = false
    loopStalls.release()
  }

  async close(): Promise<void> {
    this.closed = true
    this.limits.close()
    this.sizer.stop()
    this.health?.stop()
    this.podMetrics?.stop()
    this.stopWatchingStalls()
    this.router.endHolds(false)
    this.dns?.stop()
    await Promise.all(this.router.members().map((m) => m.upstream.close().catch(() => m.upstream.destroy())))
  }
}

/** The path probed on an upstream: its own `healthPath`, `/readyz` for a peer, else the routing default. */
function healthPath(upstream: Upstream, activePath: string): string {
  return upstream.config.healthPath ?? (upstream.config.peer ? '/readyz' : activePath)
}

/**
 * An active health probe: GET the health path on the member's own pool. On the default path any
 * answer below 500 means the server is up (a hosted API without /health answers 404 and is still
 * healthy); a refused connection, a timeout or a 5xx (vLLM's engine is dead) is not. A path
 * named for the upstream (and a peer's `/readyz`) must answer 2xx: there a 404 is a wrong path
 * and a 503 a region that is not ready.
 */
function probeMember(activePath: string) {
  return async (member: Member<Upstream>, signal: AbortSignal): Promise<boolean> => {
    const upstream = member.upstream
    const strict = upstream.config.healthPath !== undefined || upstream.config.peer
    try {
      const res = await upstream.request({ path: upstream.basePath + healthPath(upstream, activePath), method: 'GET', signal })
      await res.body.dump()
      return strict ? res.statusCode >= 200 && res.statusCode < 300 : res.statusCode < 500
    } catch {
      return false
    }
  }
}

/** A pod metrics scrape: GET the metrics path on the member's own pool; peers are not inference pods. */
function fetchMetrics(path: string) {
  return async (member: Member<Upstream>, signal: AbortSignal): Promise<string> => {
    const upstream = member.upstream
    if (upstream.config.peer) throw new Error('a peer gateway is not an inference pod')
    const res = await upstream.request({ path: upstream.basePath + path, method: 'GET', signal })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`HTTP ${res.statusCode}`)
    }
    return res.body.text()
  }
}
