/**
 * Verification by a cross-encoder served over HTTP: vLLM's `/rerank` (Jina/Cohere shape) or
 * `/score`, through undici. A cross-encoder reads both texts together, so it tells a paraphrase
 * from an antonym or scope change far better than two independent embeddings. When the server
 * fails or is slower than `timeoutMs`, the embedded lexical verifier decides (or, with
 * `fallback: miss`, nothing is served).
 */
import { Agent, request } from 'undici'
import type { VerifierConfig } from '../config.ts'
import type { Verifier } from './verifier.ts'

type RerankConfig = Extract<VerifierConfig, { kind: 'rerank' }>

export class RerankVerifier implements Verifier {
  readonly id: string
  readonly kind = 'rerank'
  readonly #url: string
  readonly #config: RerankConfig
  readonly #headers: Record<string, string>
  readonly #agent: Agent
  readonly #fallback: Verifier | null

  constructor(config: RerankConfig, fallback: Verifier | null) {
    this.#config = config
    const base = config.url.replace(/\/+$/, '')
    const path = '/' + config.api
    this.#url = base.endsWith(path) ? base : base + path
    this.id = `rerank:${config.model}`
    this.#headers = { 'content-type': 'application/json' }
    const key = config.apiKeyEnv !== undefined ? process.env[config.apiKeyEnv] : undefined
    if (key !== undefined && key !== '') this.#headers.authorization = 'Bearer ' + key
    this.#agent = new Agent({ connections: 16, keepAliveTimeout: 4_000 })
    this.#fallback = fallback
  }

  async verify(query: string, candidates: readonly string[], signal?: AbortSignal): Promise<boolean[]> {
    if (candidates.length === 0) return []
    try {
      const scores = await this.scores(query, candidates, signal)
      return scores.map((s) => s >= this.#config.minScore)
    } catch (err) {
      if (signal?.aborted || this.#fallback === null) throw err
      return this.#fallback.verify(query, candidates, signal)
    }
  }

  /** One score per candidate, in candidate order. */
  async scores(query: string, candidates: readonly string[], signal?: AbortSignal): Promise<number[]> {
    const timeout = AbortSignal.timeout(this.#config.timeoutMs)
    const c = this.#config
    const body =
      c.api === 'rerank'
        ? { model: c.model, query, documents: candidates, top_n: candidates.length, return_documents: false }
        : { model: c.model, text_1: query, text_2: candidates }
    const res = await request(this.#url, {
      method: 'POST',
      headers: this.#headers,
      body: JSON.stringify(body),
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      dispatcher: this.#agent,
    })
    const json = (await res.body.json()) as Record<string, unknown>
    if (res.statusCode !== 200) throw new Error(`${c.api} upstream answered ${res.statusCode}`)
    const rows = (c.api === 'rerank' ? json.results : json.data) as { index?: unknown; relevance_score?: unknown; score?: unknown }[] | undefined
    if (!Array.isArray(rows)) throw new Error(`${c.api} upstream returned no scores`)
    const out = new Array<number>(candidates.length).fill(Number.NaN)
    for (const r of rows) {
      const score = c.api === 'rerank' ? r.relevance_score : r.score
      if (typeof r.index !== 'number' || typeof score !== 'number' || r.index < 0 || r.index >= out.length) throw new Error(`${c.api} upstream returned a malformed score`)
      out[r.index] = score
    }
    if (out.some((s) => Number.isNaN(s))) throw new Error(`${c.api} upstream left candidates unscored`)
    return out
  }

  async close(): Promise<void> {
    await this.#agent.close()
    await this.#fallback?.close()
  }
}
