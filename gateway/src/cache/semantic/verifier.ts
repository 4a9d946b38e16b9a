/**
 * The verification step after retrieval: nearest neighbours by embedding are only candidates; a
 * verifier decides which of them ask the same thing as the request. The detail signature
 * (numbers, entities, order, code, negation) is checked before any verifier runs.
 */
import type { VerifierConfig } from '../config.ts'

export interface Verifier {
  /** Model or method and version; reported in logs and the evaluation. */
  readonly id: string
  /** Label for metrics. */
  readonly kind: string
  /** For each candidate prompt, true when it asks the same thing as `query`. Rejects on failure. */
  verify(query: string, candidates: readonly string[], signal?: AbortSignal): Promise<boolean[]>
  close(): Promise<void>
}

export async function createVerifier(config: VerifierConfig): Promise<Verifier> {
  const { LexicalVerifier } = await import('./lexical-verifier.ts')
  if (config.kind === 'lexical') return new LexicalVerifier()
  const { RerankVerifier } = await import('./rerank-verifier.ts')
  return new RerankVerifier(config, config.fallback === 'lexical' ? new LexicalVerifier() : null)
}
