/**
 * The runtime snapshot: everything the request path needs, compiled once from a validated config
 * and never mutated afterwards (pools built, model table indexed, /v1/models body serialized).
 * A config reload builds a new snapshot and swaps the reference; in-flight calls keep the one they
 * started on.
 */
import { Authenticator } from '../auth/authenticator.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { Upstream } from '../upstream/upstream.ts'
import type { CallContext, RetryPolicy, Target, TargetPicker } from '../proxy/call.ts'
import type { FailureKind } from '../proxy/upstream-errors.ts'

/** A member of a model's route: one upstream with its live counters. */
export class UpstreamTarget implements Target {
  readonly name: string
  readonly dispatcher: Upstream
  outstanding: number
  consecutiveFailures: number

  constructor(upstream: Upstream) {
    this.name = upstream.name
    this.dispatcher = upstream
    this.outstanding = 0
    this.consecutiveFailures = 0
  }

  onStart(): void {
    this.outstanding++
  }

  onFirstByte(): void {}

  onSuccess(): void {
    this.outstanding--
    this.consecutiveFailures = 0
  }

  onFailure(_kind: FailureKind): void {
    this.outstanding--
    this.consecutiveFailures++
  }
}

/** The members serving one public model, in priority order, rotated round robin inside a tier. */
export class ModelRoute implements TargetPicker {
  readonly publicModel: string
  readonly upstreamModel: string
  readonly members: readonly UpstreamTarget[]
  private next: number

  constructor(publicModel: string, upstreamModel: string, members: readonly UpstreamTarget[]) {
    this.publicModel = publicModel
    this.upstreamModel = upstreamModel
    this.members = [...members].sort((a, b) => a.dispatcher.config.priority - b.dispatcher.config.priority)
    this.next = 0
  }

  pick(_key: string | null, exclude: ReadonlySet<Target> | null): Target | null {
    const members = this.members
    const n = members.length
    for (let i = 0; i < n; i++) {
      const m = members[(this.next + i) % n]!
      if (exclude !== null && exclude.has(m)) continue
      this.next = (this.next + i + 1) % n
      return m
    }
    return null
  }
}

export interface SnapshotDeps {
  env: NodeJS.ProcessEnv
  buildContext(snapshot: RuntimeSnapshot): CallContext
}

export class RuntimeSnapshot {
  readonly config: GatewayConfig
  readonly upstreams: readonly Upstream[]
  readonly targets: readonly UpstreamTarget[]
  /** Exact model id -> route. */
  private readonly routes: Map<string, ModelRoute>
  /** Members of `"*"` upstreams, for models no upstream names explicitly. */
  private readonly wildcard: readonly UpstreamTarget[]
  private readonly wildcardRoutes: Map<string, ModelRoute>
  readonly modelsBody: string
  readonly modelIds: readonly string[]
  readonly ctx: CallContext
  readonly retry: RetryPolicy
  readonly auth: Authenticator

  constructor(config: GatewayConfig, deps: SnapshotDeps) {
    this.config = config
    this.auth = new Authenticator(config.auth)
    const upstreams = config.upstreams.map((u) => new Upstream(u, deps.env))
    this.upstreams = upstreams
    this.targets = upstreams.map((u) => new UpstreamTarget(u))
    const byModel = new Map<string, UpstreamTarget[]>()
    const wildcard: UpstreamTarget[] = []
    for (const t of this.targets) {
      for (const model of t.dispatcher.config.models) {
        if (model === '*') {
          wildcard.push(t)
          continue
        }
        let list = byModel.get(model)
        if (list === undefined) byModel.set(model, (list = []))
        list.push(t)
      }
    }
    this.routes = new Map([...byModel].map(([model, members]) => [model, new ModelRoute(model, model, members)]))
    this.wildcard = wildcard
    this.wildcardRoutes = new Map()
    this.modelIds = Object.freeze([...byModel.keys()].sort())
    const created = Math.floor(Date.now() / 1000)
    this.modelsBody = JSON.stringify({
      object: 'list',
      data: this.modelIds.map((id) => ({ id, object: 'model', created, owned_by: 'velox' })),
    })
    this.retry = {
      maxAttempts: 3,
      retryOn: new Set(['connect', 'reset', '429', '5xx', 'stream-error'] as const),
      tryAcquireRetry: () => true,
    }
    this.ctx = deps.buildContext(this)
  }

  /** The route for a public model id, or null when no upstream serves it. */
  resolve(model: string): ModelRoute | null {
    const route = this.routes.get(model)
    if (route !== undefined) return route
    if (this.wildcard.length === 0) return null
    let wild = this.wildcardRoutes.get(model)
    if (wild === undefined) {
      // Bounded: a client inventing model names must not grow this map without limit.
      if (this.wildcardRoutes.size >= 1024) return new ModelRoute(model, model, this.wildcard)
      wild = new ModelRoute(model, model, this.wildcard)
      this.wildcardRoutes.set(model, wild)
    }
    return wild
  }

  /** Opens the configured warm connections on every pool; resolves to how many upstreams answered. */
  async warm(): Promise<number> {
    const results = await Promise.all(this.upstreams.map((u) => u.warm().catch(() => 0)))
    return results.filter((n, i) => n > 0 || this.upstreams[i]!.config.pool.warm === 0).length
  }

  async close(): Promise<void> {
    await Promise.all(this.upstreams.map((u) => u.close().catch(() => u.destroy())))
  }
}
