/**
 * Deterministic text: a completion is a pure function of (model, prompt, choice index), so tests
 * can compare answers and caches see realistic repeat/miss patterns.
 */

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** Plain ASCII words only: tokens are spliced into JSON without escaping. */
const VOCAB: readonly string[] = [
  'the', 'gateway', 'routes', 'every', 'request', 'to', 'a', 'healthy', 'upstream', 'and', 'streams',
  'tokens', 'back', 'with', 'low', 'latency', 'while', 'cache', 'answers', 'repeat', 'questions', 'in',
  'microseconds', 'model', 'replies', 'are', 'simulated', 'here', 'so', 'tests', 'stay', 'fast',
  'deterministic', 'fair', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'region', 'node',
  'packet', 'socket', 'buffer', 'stream', 'chunk', 'event', 'signal', 'metric', 'trace', 'budget', 'pool',
  'warm', 'idle', 'retry', 'failover', 'circuit', 'breaker', 'peak', 'average', 'window', 'queue',
]
const VOCAB_MASK = 63
if (VOCAB.length !== VOCAB_MASK + 1) throw new Error('simulator vocabulary must hold 64 words')

const FIRST: readonly string[] = VOCAB.map((w) => w[0]!.toUpperCase() + w.slice(1))
const NEXT: readonly string[] = VOCAB.map((w) => ' ' + w)

export function hashString(hash: number, s: string): number {
  let h = hash
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

export function hashInt(hash: number, n: number): number {
  let h = hash ^ (n & 0xffff)
  h = Math.imul(h, FNV_PRIME) ^ (n >>> 16)
  return Math.imul(h, FNV_PRIME) >>> 0
}

/** Avalanche step (murmur3 fmix32) so close hashes give unrelated random sequences. */
export function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0 || 0x9e3779b9
}

export function choiceSeed(promptHash: number, choice: number): number {
  return mix(promptHash + Math.imul(choice + 1, 0x9e3779b9))
}

/** The whole completion as one string (token i is word i, space-separated). */
export function completionText(seed: number, count: number): string {
  let s = seed | 0
  let out = ''
  for (let i = 0; i < count; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    out += i === 0 ? FIRST[s & VOCAB_MASK] : NEXT[s & VOCAB_MASK]
  }
  return out
}

/** The same completion split into its tokens, as they appear in stream deltas. */
export function completionTokens(seed: number, count: number): string[] {
  let s = seed | 0
  const out = new Array<string>(count)
  for (let i = 0; i < count; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    out[i] = (i === 0 ? FIRST[s & VOCAB_MASK] : NEXT[s & VOCAB_MASK])!
  }
  return out
}

/** Accumulates a prompt's hash and size while walking request fields, without building strings. */
export class PromptDigest {
  hash = FNV_OFFSET
  chars = 0
  tokens = 0

  /** Content that counts toward prompt tokens. */
  text(s: string): void {
    this.hash = hashString(this.hash, s)
    this.chars += s.length
  }

  /** Structure (roles, separators) that changes the answer but is not prompt text. */
  tag(s: string): void {
    this.hash = hashString(this.hash, s)
  }

  tokenIds(ids: readonly unknown[]): void {
    let h = this.hash
    for (let i = 0; i < ids.length; i++) h = hashInt(h, Number(ids[i]) | 0)
    this.hash = h
    this.tokens += ids.length
  }

  /** Any JSON value: strings and text parts count as text, other structures are hashed whole. */
  value(v: unknown): void {
    if (typeof v === 'string') this.text(v)
    else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) this.part(v[i])
    } else if (v !== null && v !== undefined) this.tag(JSON.stringify(v))
  }

  private part(p: unknown): void {
    if (typeof p === 'string') this.text(p)
    else if (p !== null && typeof p === 'object') {
      const t = (p as { text?: unknown }).text
      if (typeof t === 'string') this.text(t)
      else {
        const c = (p as { content?: unknown }).content
        if (c !== undefined) this.value(c)
        else this.tag(JSON.stringify(p))
      }
    } else if (p !== undefined) this.tag(String(p))
  }

  /** Roughly four characters per token, like English text under common BPE vocabularies. */
  promptTokens(overhead: number): number {
    return Math.ceil(this.chars / 4) + this.tokens + overhead
  }
}
