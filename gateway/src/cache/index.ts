/**
 * The response cache: exact (memory, optionally shared through Redis) and semantic (opt-in per
 * route). The request path calls, in order:
 *
 *   const plan = cache.plan(req)                        // sync, no I/O
 *   const hit = await cache.lookup(plan)                // memory answers synchronously
 *   if (hit) return cache.replay(hit, plan, res, extra)
 *   const sem = cache.semanticLookup(plan, signal)      // null, or race it against the upstream
 *   const rec = cache.recorder(plan, status, headers)   // feed it the upstream bytes
 *   ...statusHeaders(plan) on the proxied response
 *
 * A wrong hit is worse than a miss: every hit is re-checked against the requester's scope, and
 * only complete, successful answers are ever stored.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { ClientResponse } from '../protocols/client-response.ts'
import type { Registry } from 'prom-client'
import { canonicalBody, digest } from './canonical.ts'
import type { CacheConfig, CacheEndpoint } from './config.ts'
import { checkEntry, compressEntry, loadEntry, storeEntry, storedBytes, uncheckedEntry, worthCompressing, type CachedResponse, type StoredEntry } from './entry.ts'
import { ByteLru } from './byte-lru.ts'
import { CacheMetrics } from './metrics.ts'
import type { CounterCell, HistogramCell } from '../telemetry/cells.ts'
import { normalizeResponse } from './normalize.ts'
import type { BypassPlan, CachePlan, LookupPlan, SemanticPlan } from './plan.ts'
import { bodyBypassReason, headerBypassReason, PolicyTable, scopeId, type BypassReason } from './policy.ts'
import { BodyRecorder, type Recorder } from './recorder.ts'
import { RedisTier, type Logger, type RedisSettings } from './redis-tier.ts'
import { CACHE_REASON_HEADER, CACHE_SIMILARITY_HEADER, CACHE_STATUS_HEADER, servesShape, writeReplay } from './replay.ts'
import { createEmbedder } from './semantic/embedder.ts'
import { semanticInput } from './semantic/request.ts'
import type { SemanticCache } from './semantic/semantic-cache.ts'
import { warmFromFile } from './warm.ts'

export { CacheConfigSchema, type CacheConfig, type CacheConfigInput, type CacheEndpoint } from './config.ts'
export type { CachedResponse } from './entry.ts'
export type { CachePlan, LookupPlan, BypassPlan, SemanticPlan } from './plan.ts'
export type { Recorder } from './recorder.ts'
export type { BypassReason } from './policy.ts'
export { CACHE_BYPASS_REQUEST_HEADER } from './policy.ts'
export { CACHE_REASON_HEADER, CACHE_SIMILARITY_HEADER, CACHE_STATUS_HEADER, type CacheStatus } from './replay.ts'

export interface CacheRequest {
  tenant: string
  endUser: string | null
  endpoint: CacheEndpoint
  /** Resolved upstream model id. */
  model: string
  /** Parsed JSON body. */
  body: Record<string, unknown>
  headers: IncomingHttpHeaders
}

export type RedisConfig = RedisSettings

export interface CacheLogger extends Logger {}

export interface SemanticResult {
  response: CachedResponse
  similarity: number
}

const BYPASS_PLANS = new Map<BypassReason, BypassPlan>()
function bypass(reason: BypassReason): BypassPlan {
  let p = BYPASS_PLANS.get(reason)
  if (p === undefined) {
    p = Object.freeze({ mode: 'bypass', reason, refresh: null })
    BYPASS_PLANS.set(reason, p)
  }
  return p
}

function contentTypeOf(headers: Record<string, string | string[] | undefined>): string {
  const v = headers['content-type']
  return (Array.isArray(v) ? v[0] ?? '' : v ?? '').toLowerCase()
}

export class ResponseCache {
  readonly metrics: CacheMetrics
  readonly #config: CacheConfig
  readonly #policies: PolicyTable
  readonly #memory: ByteLru<StoredEntry>
  readonly #redis: RedisTier | null
  readonly #semantic: SemanticCache | null
  readonly #boot: Promise<void>[] = []
  /** Stores still finishing in the background (compression, then Redis and the semantic tier). */
  readonly #storing = new Set<Promise<void>>()
  /** `t:<tenant>` per tenant, so the entries of one tenant share one scope string. */
  readonly #tenantScopes = new Map<string, string>()
  // Metric cells the request path records into, resolved once.
  readonly #exactHits: CounterCell
  readonly #semanticHits: CounterCell
  readonly #exactMisses: CounterCell
  readonly #semanticMisses: CounterCell
  readonly #stored: CounterCell
  readonly #rejected: CounterCell
  readonly #notOk: CounterCell
  readonly #memoryLookups: HistogramCell
  readonly #redisLookups: HistogramCell

  private constructor(config: CacheConfig, metrics: CacheMetrics, redis: RedisTier | null, semantic: SemanticCache | null) {
    this.#config = config
    this.metrics = metrics
    this.#policies = new PolicyTable(config)
    const capacity = metrics.evictions.cell('exact', 'capacity')
    const expired = metrics.evictions.cell('exact', 'expired')
    this.#memory = new ByteLru<StoredEntry>({
      maxBytes: config.maxBytes,
      costOf: storedBytes,
      expiresAt: (e) => e.meta.expiresAt,
      onEvict: (cause) => (cause === 'capacity' ? capacity : expired).inc(),
    })
    this.#exactHits = metrics.hits.cell('exact')
    this.#semanticHits = metrics.hits.cell('semantic')
    this.#exactMisses = metrics.misses.cell('exact')
    this.#semanticMisses = metrics.misses.cell('semantic')
    this.#stored = metrics.stores.cell('exact', 'stored')
    this.#rejected = metrics.stores.cell('exact', 'rejected')
    this.#notOk = metrics.stores.cell('exact', 'status')
    this.#memoryLookups = metrics.lookupSeconds.cell('exact', 'memory')
    this.#redisLookups = metrics.lookupSeconds.cell('exact', 'redis')
    this.#redis = redis
    this.#semantic = semantic
    metrics.sizes = () => ({
      exact: { bytes: this.#memory.bytes, entries: this.#memory.size },
      semantic: { bytes: semantic?.store.bytes ?? 0, entries: semantic?.store.size ?? 0 },
    })
  }

  static async create(config: CacheConfig, redisConfig: RedisConfig, registry: Registry, logger: CacheLogger): Promise<ResponseCache> {
    const metrics = new CacheMetrics(registry)
    const redis = config.backend === 'redis' ? await RedisTier.connect(redisConfig, metrics, logger) : null
    const wantsSemantic = config.semantic.enabled || config.routes.some((r) => r.semantic?.enabled === true)
    let semantic: SemanticCache | null = null
    let useRedisSearch = false
    if (wantsSemantic) {
      try {
        // Loaded only here: the vector index (a native addon) and the model stay out of a gateway
        // that has no semantic route.
        const { SemanticCache } = await import('./semantic/semantic-cache.ts')
        const { createVerifier } = await import('./semantic/verifier.ts')
        const embedder = await createEmbedder(config.semantic.embedder)
        const verifier = await createVerifier(config.semantic.verifier)
        useRedisSearch = redis !== null && config.semantic.redisSearch === 'auto' && (await redis.detectVectorSearch())
        semantic = new SemanticCache(config.semantic, embedder, verifier, metrics, redis, useRedisSearch)
        logger.info({ embedder: embedder.id, verifier: verifier.id, index: useRedisSearch ? 'redis-vector-search' : 'in-process' }, 'cache: semantic cache on')
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'cache: semantic cache off, the embedder could not start')
      }
    }
    const cache = new ResponseCache(config, metrics, redis, semantic)
    if (redis !== null && semantic !== null && !useRedisSearch) {
      const s = semantic
      cache.#boot.push(
        redis.syncSemantic((r) => s.addRecord(r), Math.max(1, Math.floor(config.semantic.maxBytes / 4096))).then((n) => {
          if (n > 0) logger.info({ entries: n }, 'cache: semantic entries rebuilt from redis')
        }),
      )
    }
    if (config.warmFile !== undefined) {
      const file = config.warmFile
      cache.#boot.push(
        warmFromFile(file, cache).then(
          (r) => logger.info({ file, ...r }, 'cache: warmed from file'),
          (err: Error) => logger.warn({ file, err: err.message }, 'cache: warm file could not be read'),
        ),
      )
    }
    return cache
  }

  /** Sync and cheap: policy, bypass rules and the canonical key. */
  plan(req: CacheRequest): CachePlan {
    const policy = this.#policies.resolve(req.endpoint, req.model)
    if (!policy.enabled) return this.#bypass('disabled')
    const hb = headerBypassReason(req.headers)
    if (hb === 'opt-out' || hb === 'no-store') return this.#bypass(hb)
    const bb = bodyBypassReason(req.endpoint, req.body, policy)
    if (bb !== null) return this.#bypass(bb)
    const scope = policy.scope === 'tenant' ? this.#tenantScope(req.tenant) : scopeId(policy.scope, req.tenant, req.endUser)
    if (scope === null) return this.#bypass('no-end-user')
    const body = req.body
    const stream = body.stream === true && req.endpoint !== 'embeddings'
    const so = body.stream_options
    const includeUsage = stream && so !== null && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true
    let semantic: SemanticPlan | null = null
    if (policy.semanticEnabled && this.#semantic !== null) {
      const s = semanticInput(scope, req.model, body, this.#semantic.embedder.id, this.#config.semantic.maxInputChars)
      if (s !== null) semantic = { partition: s.partition, text: s.text, threshold: policy.semanticThreshold, analysis: null, vector: null }
    }
    const plan: LookupPlan = {
      mode: 'lookup',
      key: digest(scope, req.endpoint, canonicalBody(body, req.model)),
      scope,
      endpoint: req.endpoint,
      model: req.model,
      stream,
      includeUsage,
      ttlMs: policy.ttlMs,
      maxEntryBytes: policy.maxEntryBytes,
      semantic,
    }
    if (hb === 'no-cache') {
      this.metrics.bypasses.cell('no-cache').inc()
      return { mode: 'bypass', reason: 'no-cache', refresh: plan }
    }
    return plan
  }

  #bypass(reason: BypassReason): BypassPlan {
    this.metrics.bypasses.cell(reason).inc()
    return bypass(reason)
  }

  #tenantScope(tenant: string): string {
    let scope = this.#tenantScopes.get(tenant)
    if (scope === undefined) {
      scope = scopeId('tenant', tenant, null)!
      // Tenants come from the auth table, so this stays small; the bound is for safety only.
      if (this.#tenantScopes.size >= 4096) this.#tenantScopes.clear()
      this.#tenantScopes.set(tenant, scope)
    }
    return scope
  }

  /**
   * Exact lookup. Memory answers synchronously; the Redis tier (on a memory miss) resolves within
   * `redis.commandTimeoutMs` or with null. Never throws.
   */
  lookup(plan: CachePlan): CachedResponse | null | Promise<CachedResponse | null> {
    if (plan.mode !== 'lookup') return null
    const started = performance.now()
    const now = Date.now()
    let e = this.#memory.get(plan.key, now)
    if (e !== null && e.meta.checked === false) e = this.#check(plan.key, e)
    if (e !== null && this.#servable(e, plan, now)) {
      this.#memoryLookups.observe((performance.now() - started) / 1000)
      return loadEntry(e)
    }
    if (this.#redis === null) {
      this.#exactMisses.inc()
      return null
    }
    return this.#redisLookup(plan, started)
  }

  /**
   * First hit on an answer stored unchecked: validated (and a stream folded) now, swapped in for
   * the raw form, or dropped when it is not a complete, successful answer.
   */
  #check(key: string, raw: StoredEntry): StoredEntry | null {
    let checked: StoredEntry | null
    try {
      checked = checkEntry(raw)
    } catch {
      checked = null
    }
    if (checked === null) {
      this.#memory.delete(key)
      this.#rejected.inc()
      return null
    }
    this.#memory.replace(key, raw, checked)
    if (worthCompressing(checked)) this.#compressInBackground(key, checked, null)
    return checked
  }

  async #redisLookup(plan: LookupPlan, started: number): Promise<CachedResponse | null> {
    const e = await this.#redis!.get(plan.key)
    const now = Date.now()
    this.#redisLookups.observe((performance.now() - started) / 1000)
    if (e === null || e.meta.key !== plan.key || !this.#servable(e, plan, now)) {
      this.#exactMisses.inc()
      return null
    }
    this.#memory.set(plan.key, e)
    return loadEntry(e)
  }

  #servable(e: StoredEntry, plan: LookupPlan, now: number): boolean {
    const m = e.meta
    return m.scope === plan.scope && m.endpoint === plan.endpoint && m.expiresAt > now && servesShape(m, plan)
  }

  /**
   * Semantic lookup, to race against the upstream call: null when it does not apply (not opted
   * in, not single-turn safe, empty partition, or the predictor expects no hit). The promise
   * resolves to null on a miss, on abort and on any failure.
   */
  semanticLookup(plan: CachePlan, signal: AbortSignal): Promise<SemanticResult | null> | null {
    if (plan.mode !== 'lookup' || plan.semantic === null || this.#semantic === null) return null
    const p = this.#semantic.lookup(plan, signal)
    if (p === null) return null
    return p.then(
      (hit) => {
        if (hit === null) {
          this.#semanticMisses.inc()
          return null
        }
        return { response: { ...loadEntry(hit.entry), similarity: hit.similarity }, similarity: hit.similarity }
      },
      () => null,
    )
  }

  /**
   * A recorder for the upstream response, or null when it cannot be stored (bypass, non-200,
   * compressed or unknown content type). It commits only a complete, successful response.
   */
  recorder(plan: CachePlan, statusCode: number, headers: Record<string, string | string[] | undefined>): Recorder | null {
    const lp = plan.mode === 'lookup' ? plan : plan.refresh
    if (lp === null) return null
    if (statusCode !== 200) {
      this.#notOk.inc()
      return null
    }
    const enc = headers['content-encoding']
    if (enc !== undefined && enc !== 'identity') return null
    const ct = contentTypeOf(headers)
    if (!ct.includes('json') && !ct.includes('text/event-stream')) return null
    return new BodyRecorder(lp.maxEntryBytes, (body) => this.#keep(lp, ct, body))
  }

  /**
   * Stores what a recorder collected (it calls this after the response ended, from setImmediate).
   * An answer that only this process's memory will hold is kept unchecked, to be validated on its
   * first hit; one going to Redis or the semantic tier is validated first (`commit`), since other
   * processes and the semantic index take it as it is.
   */
  #keep(plan: LookupPlan, contentType: string, body: Buffer): void {
    if (this.#redis !== null || plan.semantic !== null) {
      this.commit(plan, contentType, body)
      return
    }
    const now = Date.now()
    const ttlMs = this.#ttlMs(plan)
    const shape = contentType.includes('text/event-stream') ? 'sse' : 'json'
    const stored = uncheckedEntry(plan.key, plan.scope, plan.endpoint, shape, body, now, now + ttlMs)
    this.#memory.set(plan.key, stored)
    this.#stored.inc()
    if (worthCompressing(stored)) this.#compressInBackground(plan.key, stored, null)
  }

  #ttlMs(plan: LookupPlan): number {
    return Math.max(1_000, plan.ttlMs * (1 - Math.random() * this.#config.ttlJitter))
  }

  /** Validates and stores one upstream answer; false when it is not cacheable. */
  commit(plan: LookupPlan, contentType: string, body: Buffer): boolean {
    const n = normalizeResponse(plan.endpoint, contentType, body)
    if (n === null || n.body.length > plan.maxEntryBytes) {
      this.#rejected.inc()
      return false
    }
    const now = Date.now()
    const ttlMs = this.#ttlMs(plan)
    const response: CachedResponse = {
      key: plan.key,
      scope: plan.scope,
      endpoint: plan.endpoint,
      status: 200,
      shape: n.shape,
      sourceShape: n.sourceShape,
      hasUsage: n.hasUsage,
      body: n.body,
      size: n.body.length,
      storedAt: now,
      expiresAt: now + ttlMs,
      similarity: null,
    }
    const stored = storeEntry(response)
    this.#memory.set(plan.key, stored)
    this.#stored.inc()
    if (!worthCompressing(stored)) {
      this.#share(plan, stored, ttlMs)
      return true
    }
    this.#compressInBackground(plan.key, stored, (e) => this.#share(plan, e, ttlMs))
    return true
  }

  /**
   * Served uncompressed from now on; swapped for its compressed form once the pool has made it,
   * then handed to `then` (compressed, or as it was when compression did not pay).
   */
  #compressInBackground(key: string, stored: StoredEntry, then: ((e: StoredEntry) => void) | null): void {
    const p = compressEntry(stored).then((compressed) => {
      if (compressed !== null) this.#memory.replace(key, stored, compressed)
      then?.(compressed ?? stored)
      this.#storing.delete(p)
    })
    this.#storing.add(p)
  }

  /** Writes a stored entry to Redis and the semantic tier, where they apply. */
  #share(plan: LookupPlan, stored: StoredEntry, ttlMs: number): void {
    this.#redis?.set(plan.key, stored, ttlMs)
    if (plan.semantic !== null && this.#semantic !== null) {
      void this.#semantic.add(plan, stored, ttlMs).then((ok) => this.metrics.stores.cell('semantic', ok ? 'stored' : 'rejected').inc())
    }
  }

  /** Writes a hit (from `lookup` or `semanticLookup`) in the shape the client asked for. */
  replay(hit: CachedResponse, plan: CachePlan, res: ClientResponse, extraHeaders: Record<string, string>): void {
    const want = plan.mode === 'lookup' ? plan : { stream: false, includeUsage: false }
    const semantic = hit.similarity !== null
    const cacheHeaders: Record<string, string> = semantic
      ? { [CACHE_STATUS_HEADER]: 'semantic-hit', [CACHE_SIMILARITY_HEADER]: hit.similarity.toFixed(4) }
      : { [CACHE_STATUS_HEADER]: 'hit' }
    writeReplay(hit, want, res, cacheHeaders, extraHeaders)
    if (semantic) this.#semanticHits.inc()
    else this.#exactHits.inc()
  }

  /** Headers for a response that did not come from the cache. */
  statusHeaders(plan: CachePlan): Record<string, string> {
    return plan.mode === 'lookup' ? { [CACHE_STATUS_HEADER]: 'miss' } : { [CACHE_STATUS_HEADER]: 'bypass', [CACHE_REASON_HEADER]: plan.reason }
  }

  /** Resolves when boot work (warm file, Redis rebuild) is done; failures there are logged, not thrown. */
  async ready(): Promise<void> {
    await Promise.allSettled(this.#boot)
  }

  /** Resolves when every store begun so far has finished its background part (compression). */
  async settled(): Promise<void> {
    while (this.#storing.size > 0) await Promise.all(this.#storing)
  }

  async close(): Promise<void> {
    await this.ready()
    await this.settled()
    await this.#semantic?.close()
    await this.#redis?.close()
    this.#memory.clear()
  }

  /**
   * Operator purge: the entry under one exact `key`, or every entry of a `tenant` (its per-user
   * entries too), from memory, the semantic index and the shared Redis tier. Entries other
   * gateway processes hold in memory age out by their TTL.
   */
  async purge(target: { key: string } | { tenant: string }): Promise<{ memory: number; semantic: number; redis: number }> {
    const key = 'key' in target ? target.key : null
    const tenantScope = 'tenant' in target ? 't:' + target.tenant : null
    const match = (meta: { key: string; scope: string }): boolean =>
      key !== null ? meta.key === key : meta.scope === tenantScope || meta.scope.startsWith(tenantScope + '\u0000')
    const memory = this.#memory.deleteWhere((e) => match(e.meta))
    const semantic = this.#semantic?.store.deleteWhere(match) ?? 0
    const redis = this.#redis === null ? 0 : await this.#redis.purge(key, match)
    return { memory, semantic, redis }
  }

  /** Entries and bytes held in this process, by tier. */
  stats(): Record<string, { bytes: number; entries: number }> {
    return this.metrics.sizes()
  }
}
