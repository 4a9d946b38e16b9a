/**
 * Semantic entries held in this process: vector, detail signature and stored response, bounded
 * in bytes with least-recently-used eviction and per-entry expiry (the exact store's ByteLru),
 * indexed per partition.
 */
import { ByteLru, type EvictionCause } from '../byte-lru.ts'
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
  readonly #items: ByteLru<SemanticItem>
  readonly #byLabel = new Map<number, SemanticItem>()
  readonly #partitions = new Map<string, PartitionIndex>()
  #nextLabel = 1

  constructor(maxBytes: number, exactScanMax: number, onEvict: (cause: EvictionCause) => void) {
    this.#maxBytes = maxBytes
    this.#exactScanMax = exactScanMax
    this.#items = new ByteLru<SemanticItem>({
      maxBytes,
      costOf: (item) => item.bytes,
      expiresAt: (item) => item.entry.meta.expiresAt,
      onRemove: (item) => this.#unindex(item),
      onEvict,
    })
  }

  get bytes(): number {
    return this.#items.bytes
  }

  get size(): number {
    return this.#items.size
  }

  partitionSize(partition: string): number {
    return this.#partitions.get(partition)?.size ?? 0
  }

  add(id: string, partition: string, vector: Float32Array, guard: string, text: string, entry: StoredEntry): void {
    this.#items.delete(id)
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
    this.#byLabel.set(label, item)
    this.#items.set(id, item)
  }

  /** The k nearest live entries of the partition, best first. */
  search(partition: string, q: Float32Array, k: number, now: number): Candidate[] {
    const index = this.#partitions.get(partition)
    if (index === undefined || index.dim !== q.length) return []
    const out: Candidate[] = []
    for (const n of index.search(q, k)) {
      const found = this.#byLabel.get(n.label)
      if (found === undefined) continue
      // Drops the item (and counts it) if it expired; a live one is marked used only when served.
      const item = this.#items.peek(found.id, now)
      if (item !== found) continue
      out.push({ item, similarity: n.similarity })
    }
    return out
  }

  /** Marks an entry as used, for LRU. */
  touch(item: SemanticItem): void {
    this.#items.touch(item.id, item)
  }

  /** Removes every entry whose metadata matches (an operator's purge); returns how many. */
  deleteWhere(match: (meta: StoredEntry['meta']) => boolean): number {
    return this.#items.deleteWhere((item) => match(item.entry.meta))
  }

  clear(): void {
    this.#items.clear()
    this.#byLabel.clear()
    this.#partitions.clear()
  }

  /** Takes a departing item out of the label map and its partition's vector index. */
  #unindex(item: SemanticItem): void {
    this.#byLabel.delete(item.label)
    const index = this.#partitions.get(item.partition)
    if (index === undefined) return
    index.remove(item.label)
    if (index.size === 0) this.#partitions.delete(item.partition)
  }
}
