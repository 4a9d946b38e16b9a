/** What `ResponseCache.plan` decides for one request; carried through lookup, record and replay. */
import type { CacheEndpoint } from './config.ts'
import type { BypassReason } from './policy.ts'
import type { TextAnalysis } from './semantic/guard.ts'

export interface SemanticPlan {
  readonly partition: string
  /** The last user message, trimmed: what gets embedded. */
  readonly text: string
  readonly threshold: number
  /** Detail signature and content words of `text`, computed on first use. */
  analysis: TextAnalysis | null
  /** Embedding of `text` once a lookup has started it, reused when the answer is stored. */
  vector: Promise<Float32Array> | null
}

export interface LookupPlan {
  readonly mode: 'lookup'
  /** Exact cache key: digest of scope, endpoint and the canonical body. */
  readonly key: string
  /** Who may share this entry: `t:<tenant>`, `t:<tenant>\0u:<user>` or `global`. */
  readonly scope: string
  readonly endpoint: CacheEndpoint
  readonly model: string
  /** The client asked for SSE. */
  readonly stream: boolean
  /** The client asked for a usage chunk at the end of the stream. */
  readonly includeUsage: boolean
  readonly ttlMs: number
  readonly maxEntryBytes: number
  readonly semantic: SemanticPlan | null
}

export interface BypassPlan {
  readonly mode: 'bypass'
  readonly reason: BypassReason
  /**
   * Set for `Cache-Control: no-cache`: the cache is not read, but the fresh answer replaces the
   * stored one (pass this plan to `recorder`).
   */
  readonly refresh: LookupPlan | null
}

export type CachePlan = LookupPlan | BypassPlan
