/**
 * Nearest-neighbour search inside one partition. Small partitions are scanned exactly (a few
 * hundred dot products cost less than a graph walk and are always right); once a partition grows
 * past `exactScanMax` it moves to an HNSW graph (hnswlib, inner product on unit vectors).
 */
import hnswlib from 'hnswlib-node'

const { HierarchicalNSW } = hnswlib
type Hnsw = InstanceType<typeof HierarchicalNSW>

const HNSW_M = 16
const HNSW_EF_CONSTRUCTION = 100
const HNSW_EF_SEARCH = 64

export interface Neighbour {
  readonly label: number
  readonly similarity: number
}

export class PartitionIndex {
  readonly dim: number
  readonly #exactScanMax: number
  #flat: Float32Array
  #slotLabels: number[] = []
  readonly #slotOf = new Map<number, number>()
  #hnsw: Hnsw | null = null
  #hnswCapacity = 0
  readonly #live = new Set<number>()

  constructor(dim: number, exactScanMax: number) {
    this.dim = dim
    this.#exactScanMax = exactScanMax
    this.#flat = new Float32Array(dim * 8)
  }

  get size(): number {
    return this.#live.size
  }

  get usesGraph(): boolean {
    return this.#hnsw !== null
  }

  /** Approximate bytes per vector held, graph links included. */
  bytesPerVector(): number {
    return this.dim * 4 + (this.#hnsw !== null ? HNSW_M * 2 * 4 + 64 : 0) + 48
  }

  add(label: number, v: Float32Array): void {
    if (v.length !== this.dim) throw new Error(`vector has ${v.length} dimensions, index has ${this.dim}`)
    if (this.#live.has(label)) this.remove(label)
    this.#live.add(label)
    if (this.#hnsw !== null) {
      this.#addToGraph(label, v)
      return
    }
    const slot = this.#slotLabels.length
    if ((slot + 1) * this.dim > this.#flat.length) {
      const grown = new Float32Array(this.#flat.length * 2)
      grown.set(this.#flat)
      this.#flat = grown
    }
    this.#flat.set(v, slot * this.dim)
    this.#slotLabels.push(label)
    this.#slotOf.set(label, slot)
    if (this.#slotLabels.length > this.#exactScanMax) this.#promote()
  }

  remove(label: number): void {
    if (!this.#live.delete(label)) return
    if (this.#hnsw !== null) {
      this.#hnsw.markDelete(label)
      return
    }
    const slot = this.#slotOf.get(label)!
    const last = this.#slotLabels.length - 1
    if (slot !== last) {
      const lastLabel = this.#slotLabels[last]!
      this.#flat.copyWithin(slot * this.dim, last * this.dim, (last + 1) * this.dim)
      this.#slotLabels[slot] = lastLabel
      this.#slotOf.set(lastLabel, slot)
    }
    this.#slotLabels.pop()
    this.#slotOf.delete(label)
  }

  search(q: Float32Array, k: number): Neighbour[] {
    if (this.#live.size === 0) return []
    if (this.#hnsw !== null) {
      const res = this.#hnsw.searchKnn(Array.from(q), Math.min(k, this.#live.size))
      return res.neighbors.map((label, i) => ({ label, similarity: 1 - res.distances[i]! }))
    }
    const dim = this.dim
    const flat = this.#flat
    const top: Neighbour[] = []
    for (let s = 0; s < this.#slotLabels.length; s++) {
      let dot = 0
      const off = s * dim
      for (let i = 0; i < dim; i++) dot += flat[off + i]! * q[i]!
      if (top.length < k || dot > top[top.length - 1]!.similarity) {
        top.push({ label: this.#slotLabels[s]!, similarity: dot })
        top.sort((a, b) => b.similarity - a.similarity)
        if (top.length > k) top.pop()
      }
    }
    return top
  }

  #promote(): void {
    const n = this.#slotLabels.length
    this.#hnswCapacity = Math.max(1024, n * 2)
    const g = new HierarchicalNSW('ip', this.dim)
    g.initIndex(this.#hnswCapacity, HNSW_M, HNSW_EF_CONSTRUCTION, 100, true)
    g.setEf(HNSW_EF_SEARCH)
    this.#hnsw = g
    for (let s = 0; s < n; s++) {
      g.addPoint(Array.from(this.#flat.subarray(s * this.dim, (s + 1) * this.dim)), this.#slotLabels[s]!, true)
    }
    this.#flat = new Float32Array(0)
    this.#slotLabels = []
    this.#slotOf.clear()
  }

  #addToGraph(label: number, v: Float32Array): void {
    const g = this.#hnsw!
    const deleted = g.getCurrentCount() - (this.#live.size - 1)
    if (deleted <= 0 && g.getCurrentCount() >= this.#hnswCapacity) {
      this.#hnswCapacity *= 2
      g.resizeIndex(this.#hnswCapacity)
    }
    // replaceDeleted reuses the slot of an evicted vector, so churn does not grow the graph.
    // Labels are never reused (the store hands out fresh ones), which that reuse relies on.
    g.addPoint(Array.from(v), label, true)
  }
}
