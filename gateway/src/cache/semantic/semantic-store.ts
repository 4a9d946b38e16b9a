/**
 * Semantic entries held in this process: vector, detail signature and stored response, bounded
 * in bytes with least-recently-used eviction and per-entry expiry, indexed per partition.
 */
import { storedBytes, type StoredEntry } from '../entry.ts'
import { PartitionIndex } from './vector-index.ts'

export interface SemanticItem {
  readonly id: string
  readonly partition: string
  readonly label: number
  readonly guard: string
  /** The prompt the entry answers: what the verifier compares a request with. */
  readonly text: string
  readonly entry: StoredEntry
  readonly bytes: number
}

export interface Candidate {
  readonly item: SemanticItem
  readonly similarity: number
}

export class SemanticStore {
  readonly #maxBytes: number
  readonly #exactScanMax: number
  readonly #items = new Map<string, SemanticItem>()
  readonly #byLabel = new Map<number, SemanticItem>()
  readonly #partitions = new Map<string, PartitionIndex>()
  readonly #onEvict: (cause: 'capacity' | 'expired') => void
  #bytes = 0
  #nextLabel = 1

  constructor(maxBytes: number, exactScanMax: number, onEvict: (cause: 'capacity' | 'expired') => void) {
    this.#maxBytes = maxBytes
    this.#exactScanMax = exactScanMax
    this.#onEvict = onEvict
  }

  get bytes(): number {
    return this.#bytes
  }

  get size(): number {
    return this.#items.size
  }

  partitionSize(partition: string): number {
    return this.#partitions.get(partition)?.size ?? 0
  }

  add(id: string, partition: string, vector: Float32Array, guard: string, text: string, entry: StoredEntry): void {
    const existing = this.#items.get(id)
    if (existing !== undefined) this.#remove(existing)
    let index = this.#partitions.get(partition)
    if (index === undefined) {
      index = new PartitionIndex(vector.length, this.#exactScanMax)
      this.#partitions.set(partition, index)
    } else if (index.dim !== vector.length) {
      return
    }
    const label = this.#nextLabel++
    const item: SemanticItem = { id, partition, label, guard, text, entry, bytes: storedBytes(entry) + index.bytesPerVector() + (guard.length + text.length + id.length) * 2 + 112 }
    if (item.bytes > this.#maxBytes) return
    index.add(label, vector)
    this.#items.set(id, item)
    this.#byLabel.set(label, item)
    this.#bytes += item.bytes
    if (this.#bytes > this.#maxBytes) this.#evict()
  }

  /** The k nearest live entries of the partition, best first. */
  search(partition: string, q: Float32Array, k: number, now: number): Candidate[] {
    const index = this.#partitions.get(partition)
    if (index === undefined || index.dim !== q.length) return []
    const out: Candidate[] = []
    for (const n of index.search(q, k)) {
      const item = this.#byLabel.get(n.label)
      if (item === undefined) continue
      if (item.entry.meta.expiresAt <= now) {
        this.#remove(item)
        this.#onEvict('expired')
        continue
      }
      out.push({ item, similarity: n.similarity })
    }
    return out
  }

  /** Marks an entry as used, for LRU. */
  touch(item: SemanticItem): void {
    if (this.#items.get(item.id) !== item) return
    this.#items.delete(item.id)
    this.#items.set(item.id, item)
  }

  #remove(item: SemanticItem): void {
    this.#items.delete(item.id)
    this.#byLabel.delete(item.label)
    this.#bytes -= item.bytes
    const index = this.#partitions.get(item.partition)
    if (index === undefined) return
    index.remove(item.label)
    if (index.size === 0) this.#partitions.delete(item.partition)
  }

  #evict(): void {
    const now = Date.now()
    for (const item of this.#items.values()) {
      if (this.#bytes <= this.#maxBytes) return
      this.#remove(item)
      this.#onEvict(item.entry.meta.expiresAt <= now ? 'expired' : 'capacity')
    }
  }

  /** Removes every entry whose metadata matches (an operator's purge); returns how many. */
  deleteWhere(match: (meta: StoredEntry['meta']) => boolean): number {
    let n = 0
    for (const item of [...this.#items.values()]) {
      if (!match(item.entry.meta)) continue
      this.#remove(item)
      n++
    }
    return n
  }

  clear(): void {
    this.#items.clear()
    this.#byLabel.clear()
    this.#partitions.clear()
    this.#bytes = 0
  }
}
