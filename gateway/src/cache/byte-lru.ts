/**
 * A byte-bounded least-recently-used map with per-entry expiry: the one eviction policy behind the
 * exact cache's memory tier (ResponseCache, index.ts) and the semantic store
 * (semantic/semantic-store.ts).
 *
 * A Map in insertion order is the LRU list: a use re-inserts its key, so the first entries are the
 * least recently used. Each value's cost is computed once, when it is stored, and kept beside it,
 * so the running total always equals the sum of what was added minus what was removed. Expired
 * entries are dropped when read; eviction takes the oldest entries first until the total fits.
 */
export type EvictionCause = 'capacity' | 'expired'

export interface ByteLruOptions<V> {
  readonly maxBytes: number
  /** What a value costs in bytes, asked once when it is stored. */
  readonly costOf: (value: V) => number
  /** When a value stops being servable (epoch ms). */
  readonly expiresAt: (value: V) => number
  /** Called for every value that leaves (get past expiry, set over it, delete, eviction; not clear). */
  readonly onRemove?: (value: V) => void
  /** Called for each value the store itself dropped: read past its expiry, or evicted for room. */
  readonly onEvict: (cause: EvictionCause) => void
}

interface Slot<V> {
  readonly value: V
  readonly cost: number
}

export class ByteLru<V> {
  readonly #maxBytes: number
  readonly #costOf: (value: V) => number
  readonly #expiresAt: (value: V) => number
  readonly #onRemove: ((value: V) => void) | null
  readonly #onEvict: (cause: EvictionCause) => void
  readonly #slots = new Map<string, Slot<V>>()
  #bytes = 0

  constructor(options: ByteLruOptions<V>) {
    this.#maxBytes = options.maxBytes
    this.#costOf = options.costOf
    this.#expiresAt = options.expiresAt
    this.#onRemove = options.onRemove ?? null
    this.#onEvict = options.onEvict
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#slots.size
  }

  /** The live value under `key`, marked as used; an expired one is dropped (and counted). */
  get(key: string, now: number): V | null {
    const slot = this.#live(key, now)
    if (slot === null) return null
    this.#slots.delete(key)
    this.#slots.set(key, slot)
    return slot.value
  }

  /** The live value under `key` without marking it used; an expired one is dropped (and counted). */
  peek(key: string, now: number): V | null {
    return this.#live(key, now)?.value ?? null
  }

  /** Marks `value` as used if it is still the one under `key`. */
  touch(key: string, value: V): void {
    const slot = this.#slots.get(key)
    if (slot === undefined || slot.value !== value) return
    this.#slots.delete(key)
    this.#slots.set(key, slot)
  }

  /** Stores `value` as the most recently used; false (nothing stored) when it alone exceeds the bound. */
  set(key: string, value: V): boolean {
    const cost = this.#costOf(value)
    if (cost > this.#maxBytes) return false
    const old = this.#slots.get(key)
    if (old !== undefined) this.#remove(key, old)
    this.#slots.set(key, { value, cost })
    this.#bytes += cost
    if (this.#bytes > this.#maxBytes) this.#evict()
    return true
  }

  /**
   * Swaps `current` for `next` in place (same LRU position) if `current` is still the value under
   * `key`; false when it was replaced, evicted or expired meanwhile.
   */
  replace(key: string, current: V, next: V): boolean {
    const slot = this.#slots.get(key)
    if (slot === undefined || slot.value !== current) return false
    const cost = this.#costOf(next)
    // Map.set on an existing key keeps its place in the insertion order.
    this.#slots.set(key, { value: next, cost })
    this.#bytes += cost - slot.cost
    if (this.#bytes > this.#maxBytes) this.#evict()
    return true
  }

  delete(key: string): boolean {
    const slot = this.#slots.get(key)
    if (slot === undefined) return false
    this.#remove(key, slot)
    return true
  }

  /** Removes every value `match` accepts (an operator's purge); returns how many. */
  deleteWhere(match: (value: V) => boolean): number {
    let n = 0
    // Deleting the entry being visited is safe for a Map iterator.
    for (const [key, slot] of this.#slots) {
      if (!match(slot.value)) continue
      this.#remove(key, slot)
      n++
    }
    return n
  }

  /** Empties the map without calling `onRemove`: an owner clears its own indexes with it. */
  clear(): void {
    this.#slots.clear()
    this.#bytes = 0
  }

  #live(key: string, now: number): Slot<V> | null {
    const slot = this.#slots.get(key)
    if (slot === undefined) return null
    if (this.#expiresAt(slot.value) > now) return slot
    this.#remove(key, slot)
    this.#onEvict('expired')
    return null
  }

  #remove(key: string, slot: Slot<V>): void {
    this.#slots.delete(key)
    this.#bytes -= slot.cost
    this.#onRemove?.(slot.value)
  }

  #evict(): void {
    const now = Date.now()
    for (const [key, slot] of this.#slots) {
      if (this.#bytes <= this.#maxBytes) return
      this.#remove(key, slot)
      this.#onEvict(this.#expiresAt(slot.value) <= now ? 'expired' : 'capacity')
    }
  }
}
