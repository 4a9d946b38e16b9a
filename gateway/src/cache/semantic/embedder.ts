/** One interface for every embedder the semantic cache can use. */
import type { EmbedderConfig } from '../config.ts'

export interface Embedder {
  /** Model id and version; part of every semantic partition key, so vectors of two models never meet. */
  readonly id: string
  /** Label for metrics. */
  readonly kind: string
  /** Unit-length embedding of `text`. Rejects on abort, timeout, overload or failure. */
  embed(text: string, signal?: AbortSignal): Promise<Float32Array>
  close(): Promise<void>
}

export class EmbedderOverloadedError extends Error {
  constructor() {
    super('embedder queue full')
    this.name = 'EmbedderOverloadedError'
  }
}

export function normalize(v: Float32Array): Float32Array {
  let s = 0
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!
  if (s === 0) return v
  const inv = 1 / Math.sqrt(s)
  for (let i = 0; i < v.length; i++) v[i]! *= inv
  return v
}

export async function createEmbedder(config: EmbedderConfig): Promise<Embedder> {
  if (config.kind === 'openai') {
    const { OpenAIEmbedder } = await import('./openai-embedder.ts')
    return new OpenAIEmbedder(config)
  }
  const { LocalEmbedder } = await import('./local-embedder.ts')
  return LocalEmbedder.start()
}
