/**
 * A vLLM-like paged KV cache: a fixed number of blocks of `blockTokens` tokens each, with
 * automatic prefix caching. A full prompt block is identified by a hash chained over every block
 * before it, so a block is reused only when the whole prefix up to it matches. Blocks no running
 * request holds keep their content and stay findable until they are needed for something else;
 * then the least recently released one is evicted first (vLLM's free-block queue).
 *
 * Usage counts blocks held by running requests, like vLLM's `kv_cache_usage_perc`: cached blocks
 * nobody holds are free space that happens to remember something.
 */

export class KvCache {
  readonly totalBlocks: number
  /** Requests holding each block. */
  private readonly refs: Int32Array
  /** The prefix hash a block holds, or -1. */
  private readonly hashOf: Float64Array
  private readonly byHash = new Map<number, number>()
  /** Blocks with refs 0 that still hold a hash, least recently released first. */
  private readonly evictable = new Map<number, true>()
  /** Blocks with refs 0 and no content. */
  private readonly empty: number[]
  /** Blocks with refs > 0. */
  used = 0

  constructor(totalBlocks: number) {
    if (!Number.isSafeInteger(totalBlocks) || totalBlocks < 1) throw new RangeError(`totalBlocks must be a positive integer, got ${totalBlocks}`)
    this.totalBlocks = totalBlocks
    this.refs = new Int32Array(totalBlocks)
    this.hashOf = new Float64Array(totalBlocks).fill(-1)
    this.empty = Array.from({ length: totalBlocks }, (_, i) => totalBlocks - 1 - i)
  }

  /** How many leading blocks of a prompt (its chained block hashes) are cached now. */
  cachedPrefix(hashes: ArrayLike<number>): number {
    let n = 0
    while (n < hashes.length && this.byHash.has(hashes[n]!)) n++
    return n
  }

  /** Blocks that could be handed out now (empty ones plus evictable cached ones). */
  get available(): number {
    return this.empty.length + this.evictable.size
  }

  /**
   * Claims the first `cached` blocks of `hashes` (already cached) and `fresh` new blocks, or
   * returns null, claiming nothing, when there is not room for all of them.
   */
  allocate(hashes: ArrayLike<number>, cached: number, fresh: number): Int32Array | null {
    let cachedIdle = 0
    for (let i = 0; i < cached; i++) if (this.refs[this.byHash.get(hashes[i]!)!] === 0) cachedIdle++
    if (this.available - cachedIdle < fresh) return null
    const blocks = new Int32Array(cached + fresh)
    for (let i = 0; i < cached; i++) {
      const b = this.byHash.get(hashes[i]!)!
      if (this.refs[b]!++ === 0) {
        this.evictable.delete(b)
        this.used++
      }
      blocks[i] = b
    }
    for (let i = cached; i < blocks.length; i++) {
      const b = this.takeBlock()
      this.refs[b] = 1
      this.used++
      blocks[i] = b
    }
    return blocks
  }

  /**
   * After a prefill: blocks[from..] computed the prompt blocks hashes[from..]; they become
   * findable. A hash another request registered first keeps its block; this one stays anonymous.
   */
  register(blocks: Int32Array, hashes: ArrayLike<number>, from: number): void {
    for (let i = from; i < hashes.length && i < blocks.length; i++) {
      const h = hashes[i]!
      if (this.byHash.has(h)) continue
      this.byHash.set(h, blocks[i]!)
      this.hashOf[blocks[i]!] = h
    }
  }

  /** The request is done (or cancelled): its blocks return to the pool, content kept. */
  release(blocks: Int32Array): void {
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!
      if (--this.refs[b]! !== 0) continue
      this.used--
      if (this.hashOf[b]! >= 0) this.evictable.set(b, true)
      else this.empty.push(b)
    }
  }

  /** Cached (findable) blocks, held or not. */
  get cachedBlocks(): number {
    return this.byHash.size
  }

  /** Forgets every cached prefix (blocks held by running requests stay held). */
  reset(): void {
    for (const b of this.evictable.keys()) {
      this.hashOf[b] = -1
      this.empty.push(b)
    }
    this.evictable.clear()
    for (let b = 0; b < this.totalBlocks; b++) this.hashOf[b] = -1
    this.byHash.clear()
  }

  private takeBlock(): number {
    const b = this.empty.pop()
    if (b !== undefined) return b
    const oldest = this.evictable.keys().next().value as number
    this.evictable.delete(oldest)
    this.byHash.delete(this.hashOf[oldest]!)
    this.hashOf[oldest] = -1
    return oldest
  }
}
