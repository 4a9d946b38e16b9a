/**
 * In-process exact store: a Map used as an LRU (insertion order; a hit re-inserts), bounded by
 * the bytes its entries cost, with per-entry expiry checked on read.
 */
import { storedBytes, type StoredEntry } from './entry.ts'

export type EvictionCause = 'capacity' | 'expired'

export class MemoryStore {
  readonly #maxBytes: number
  readonly #entries = new Map<string, StoredEntry>()
  readonly #onEvict: (cause: EvictionCause) => void
  #bytes = 0

  constructor(maxBytes: number, onEvict: (cause: EvictionCause) => void) {
    this.#maxBytes = maxBytes
    this.#onEvict = onEvict
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#entries.size
  }

  get(key: string, now: number): StoredEntry | null {
    const e = this.#entries.get(key)
    if (e === undefined) return null
    if (e.meta.expiresAt <= now) {
      this.#remove(key, e)
      this.#onEvict('expired')
      return null
    }
    this.#entries.delete(key)
    this.#entries.set(key, e)
    return e
  }

  set(key: string, e: StoredEntry): boolean {
    const cost = storedBytes(e)
    if (cost > this.#maxBytes) return false
    const old = this.#entries.get(key)
    if (old !== undefined) this.#remove(key, old)
    this.#entries.set(key, e)
    this.#bytes += cost
    if (this.#bytes > this.#maxBytes) this.#evict()
    return true
  }

  /**
   * Swaps `current` for `next` (its compressed form) if `current` is still the entry under `key`;
   * false when it was replaced, evicted or expired meanwhile.
   */
  replace(key: string, current: StoredEntry, next: StoredEntry): boolean {
    if (this.#entries.get(key) !== current) return false
    // Map.set on an existing key keeps its place in the LRU order.
    this.#entries.set(key, next)
    this.#bytes += storedBytes(next) - storedBytes(current)
    return true
  }

  delete(key: string): void {
    const e = this.#entries.get(key)
    if (e !== undefined) this.#remove(key, e)
  }

  /** Removes every entry whose metadata matches (an operator's purge); returns how many. */
  deleteWhere(match: (meta: StoredEntry['meta']) => boolean): number {
    let n = 0
    for (const [key, e] of this.#entries) {
      if (!match(e.meta)) continue
      this.#remove(key, e)
      n++
    }
    return n
  }

  clear(): void {
    this.#entries.clear()
    this.#bytes = 0
  }

  #remove(key: string, e: StoredEntry): void {
    this.#entries.delete(key)
    this.#bytes -= storedBytes(e)
  }

  #evict(): void {
    const now = Date.now()
    for (const [key, e] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) return
      this.#remove(key, e)
      this.#onEvict(e.meta.expiresAt <= now ? 'expired' : 'capacity')
    }
  }
}
