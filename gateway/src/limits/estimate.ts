/**
 * What a request may cost, known before it is sent: prompt tokens estimated from the body's size
 * (about four bytes a token for English text; JSON punctuation makes it an over-estimate, which is
 * the safe side) and output reserved as the request's own cap or the configured default. Both are
 * reconciled with the real usage when the response ends.
 */
export interface CostEstimate {
  readonly inputTokens: number
  readonly outputTokens: number
}

const BYTES_PER_TOKEN = 4

export function estimateCost(bodyBytes: number, body: Record<string, unknown>, defaultMaxTokens: number): CostEstimate {
  const cap = firstPositiveInt(body.max_completion_tokens, body.max_tokens, body.max_output_tokens)
  const n = firstPositiveInt(body.n) ?? 1
  return { inputTokens: Math.ceil(bodyBytes / BYTES_PER_TOKEN), outputTokens: (cap ?? defaultMaxTokens) * Math.min(n, 128) }
}

function firstPositiveInt(...values: unknown[]): number | null {
  for (const v of values) if (typeof v === 'number' && Number.isInteger(v) && v > 0) return Math.min(v, 10_000_000)
  return null
}
