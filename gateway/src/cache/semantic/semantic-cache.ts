/**
 * The semantic tier: embeds the last user message, searches the request's partition (in this
 * process, or with the server's vector search when Redis has it), and serves a candidate only
 * when it is above the similarity threshold, has identical details (numbers, entities in order,
 * code, URLs, negation), and the verifier judges it the same question.
 */
import { servesShape } from '../replay.ts'
import type { StoredEntry } from '../entry.ts'
import type { CacheMetrics } from '../metrics.ts'
import type { LookupPlan, SemanticPlan } from '../plan.ts'
import type { RedisTier, SemanticRecord } from '../redis-tier.ts'
import type { CacheConfig } from '../config.ts'
import type { Embedder } from './embedder.ts'
import { analyzeText, type TextAnalysis } from './guard.ts'
import { HitPredictor, sketchWords } from './predictor.ts'
import { SemanticStore } from './semantic-store.ts'
import type { Verifier } from './verifier.ts'

/** Candidates examined per lookup: the nearest one may fail the checks while the next passes. */
const K = 4

function analysisOf(sp: SemanticPlan): TextAnalysis {
  return (sp.analysis ??= analyzeText(sp.text))
}

export interface SemanticHit {
  readonly entry: StoredEntry
  readonly similarity: number
}

export class SemanticCache {
  readonly embedder: Embedder
  readonly verifier: Verifier
  readonly store: SemanticStore
  readonly predictor: HitPredictor
  readonly #metrics: CacheMetrics
  readonly #redis: RedisTier | null
  readonly #useRedisSearch: boolean

  constructor(config: CacheConfig['semantic'], embedder: Embedder, verifier: Verifier, metrics: CacheMetrics, redis: RedisTier | null, useRedisSearch: boolean) {
    this.embedder = embedder
    this.verifier = verifier
    this.#metrics = metrics
    this.#redis = redis
    this.#useRedisSearch = useRedisSearch
    this.predictor = new HitPredictor(config.predictor)
    this.store = new SemanticStore(config.maxBytes, config.exactScanMax, (cause) => metrics.evictions.cell('semantic', cause).inc())
  }

  /** Null (synchronously) when there is nothing worth embedding for: an empty partition or an unlikely hit. */
  lookup(plan: LookupPlan, signal: AbortSignal): Promise<SemanticHit | null> | null {
    const sp = plan.semantic
    if (sp === null) return null
    if (!this.#useRedisSearch && this.store.partitionSize(sp.partition) === 0) return null
    const prediction = this.predictor.predict(sp.partition, sketchWords(analysisOf(sp).content))
    if (!prediction.embed) {
      this.#metrics.predictorSkips.inc()
      return null
    }
    return this.#lookup(plan, sp, prediction.band, signal)
  }

  async #lookup(plan: LookupPlan, sp: SemanticPlan, band: number, signal: AbortSignal): Promise<SemanticHit | null> {
    const started = performance.now()
    let vector: Float32Array
    try {
      vector = await this.vectorOf(sp, signal)
    } catch {
      return null
    }
    if (signal.aborted) return null
    const candidates = this.#useRedisSearch
      ? (await this.#redis!.vectorQuery(sp.partition, vector, K)).map((h) => ({ guard: h.record.guard, text: h.record.text, entry: h.record.entry, similarity: h.similarity, item: null }))
      : this.store.search(sp.partition, vector, K, Date.now()).map((c) => ({ guard: c.item.guard, text: c.item.text, entry: c.item.entry, similarity: c.similarity, item: c.item }))
    if (candidates.length > 0) this.#metrics.similarity.observe(Math.max(0, Math.min(1, candidates[0]!.similarity)))
    const signature = analysisOf(sp).signature
    const now = Date.now()
    const eligible = candidates.filter((c) => {
      const m = c.entry.meta
      return c.similarity >= sp.threshold && c.guard === signature && m.scope === plan.scope && m.expiresAt > now && servesShape(m, plan)
    })
    let hit: SemanticHit | null = null
    if (eligible.length > 0) {
      let verdicts: boolean[]
      try {
        verdicts = await this.verifier.verify(sp.text, eligible.map((c) => c.text), signal)
      } catch {
        this.#metrics.verifications.inc({ verifier: this.verifier.kind, outcome: 'failed' }, eligible.length)
        return null
      }
      const i = verdicts.indexOf(true)
      this.#metrics.verifications.inc({ verifier: this.verifier.kind, outcome: 'rejected' }, i === -1 ? eligible.length : i)
      if (i !== -1) {
        this.#metrics.verifications.inc({ verifier: this.verifier.kind, outcome: 'accepted' })
        const c = eligible[i]!
        if (c.item !== null) this.store.touch(c.item)
        hit = { entry: c.entry, similarity: c.similarity }
      }
    }
    if (signal.aborted) return null
    this.predictor.observe(sp.partition, band, hit !== null)
    this.#metrics.lookupSeconds.cell('semantic', this.#useRedisSearch ? 'redis' : 'memory').observe((performance.now() - started) / 1000)
    return hit
  }

  /** The request's embedding, computed once per plan and shared by lookup and store. */
  vectorOf(sp: SemanticPlan, signal?: AbortSignal): Promise<Float32Array> {
    if (sp.vector !== null) return sp.vector
    const started = performance.now()
    // The shared computation is not tied to one caller's abort: the store may still need it.
    const p = this.embedder.embed(sp.text).then((v) => {
      this.#metrics.embeddingSeconds.observe({ embedder: this.embedder.kind }, (performance.now() - started) / 1000)
      return v
    })
    p.catch(() => {})
    sp.vector = p
    if (signal === undefined) return p
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error)
      const onAbort = (): void => reject(signal.reason as Error)
      signal.addEventListener('abort', onAbort, { once: true })
      p.then(
        (v) => {
          signal.removeEventListener('abort', onAbort)
          resolve(v)
        },
        (e: Error) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      )
    })
  }

  /** Stores a committed answer under its partition, here and (shared mode) in Redis. */
  async add(plan: LookupPlan, entry: StoredEntry, ttlMs: number): Promise<boolean> {
    const sp = plan.semantic
    if (sp === null) return false
    let vector: Float32Array
    try {
      vector = await this.vectorOf(sp)
    } catch {
      return false
    }
    const analysis = analysisOf(sp)
    if (!this.#useRedisSearch) this.store.add(plan.key, sp.partition, vector, analysis.signature, sp.text, entry)
    this.predictor.remember(sp.partition, sketchWords(analysis.content))
    this.#redis?.putSemantic({ id: plan.key, partition: sp.partition, vector, guard: analysis.signature, text: sp.text, entry }, ttlMs)
    return true
  }

  /** An entry written by another instance (or found at boot). */
  addRecord(r: SemanticRecord): void {
    this.store.add(r.id, r.partition, r.vector, r.guard, r.text, r.entry)
    this.predictor.remember(r.partition, sketchWords(analyzeText(r.text).content))
  }

  async close(): Promise<void> {
    this.store.clear()
    await this.embedder.close()
    await this.verifier.close()
  }
}
