/**
 * What the balancers may know about one request besides its model: the affinity key, the hashed
 * prompt prefix (inference-aware only), whether the caller asked why a member was chosen, and a
 * priority for admission control. Built once per request; every attempt of it reads the same one.
 */
export class RouteRequest {
  /** Consistent-hash key (session header or body field), or null. */
  readonly key: string | null
  /** Chained hashes of the prompt's leading blocks (see prefix-hash.ts), or null when not computed. */
  readonly blocks: Uint32Array | null
  /** Fill `explanation` on every pick. */
  readonly explain: boolean
  /**
   * Admission priority, 0 by default; higher is more important. Reserved for tenant priorities:
   * admission control reads it (see admission.ts) but nothing sets it yet.
   */
  readonly priority: number
  /** Why the last pick chose its member, when `explain` is set. */
  explanation: string | null

  constructor(key: string | null, blocks: Uint32Array | null = null, explain = false, priority = 0) {
    this.key = key
    this.blocks = blocks
    this.explain = explain
    this.priority = priority
    this.explanation = null
  }
}
