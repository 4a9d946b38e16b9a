/** Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint, through undici. */
import { Agent, request } from 'undici'
import type { EmbedderConfig } from '../config.ts'
import { normalize, type Embedder } from './embedder.ts'

type OpenAIEmbedderConfig = Extract<EmbedderConfig, { kind: 'openai' }>

export class OpenAIEmbedder implements Embedder {
  readonly id: string
  readonly kind = 'openai'
  readonly #url: string
  readonly #model: string
  readonly #headers: Record<string, string>
  readonly #timeoutMs: number
  readonly #agent: Agent

  constructor(config: OpenAIEmbedderConfig) {
    const base = config.url.replace(/\/+$/, '')
    this.#url = base.endsWith('/embeddings') ? base : base + '/v1/embeddings'
    this.#model = config.model
    this.id = `openai:${config.model}@${config.version}`
    this.#timeoutMs = config.timeoutMs
    this.#headers = { 'content-type': 'application/json' }
    const key = config.apiKeyEnv !== undefined ? process.env[config.apiKeyEnv] : undefined
    if (key !== undefined && key !== '') this.#headers.authorization = 'Bearer ' + key
    this.#agent = new Agent({ connections: 16, keepAliveTimeout: 4_000 })
  }

  async embed(text: string, signal?: AbortSignal): Promise<Float32Array> {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const res = await request(this.#url, {
      method: 'POST',
      headers: this.#headers,
      body: JSON.stringify({ model: this.#model, input: text, encoding_format: 'float' }),
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      dispatcher: this.#agent,
    })
    const body = (await res.body.json()) as { data?: { embedding?: unknown }[] }
    if (res.statusCode !== 200) throw new Error(`embeddings upstream answered ${res.statusCode}`)
    const e = body.data?.[0]?.embedding
    if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number')) throw new Error('embeddings upstream returned no vector')
    return normalize(Float32Array.from(e as number[]))
  }

  async close(): Promise<void> {
    await this.#agent.close()
  }
}
