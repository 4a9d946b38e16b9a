/**
 * Nearest-neighbour search inside one partition. Small partitions are scanned exactly (a few
 * hundred dot products cost less than a graph walk and are always right); once a partition grows
 * past `exactScanMax` it moves to an HNSW graph (USearch, inner product on unit vectors). USearch
 * ships prebuilt binaries (linux x64 and arm64 among them), so an install compiles nothing.
 */
import { Index, MetricKind, ScalarKind } from 'usearch'

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
  #hnsw: Index | null = null
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
      this.#hnsw.remove(BigInt(label))
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
      const res = this.#hnsw.search(q, Math.min(k, this.#live.size), 1)
      const out: Neighbour[] = []
      // Inner-product distance is 1 - dot; unfilled slots (fewer live vectors than k) are skipped.
      for (let i = 0; i < res.keys.length; i++) if (this.#live.has(Number(res.keys[i]))) out.push({ label: Number(res.keys[i]), similarity: 1 - res.distances[i]! })
      return out
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
    const g = new Index({
      dimensions: this.dim,
      metric: MetricKind.IP,
      quantization: ScalarKind.F32,
      connectivity: HNSW_M,
      expansion_add: HNSW_EF_CONSTRUCTION,
      expansion_search: HNSW_EF_SEARCH,
      multi: false,
    })
    this.#hnsw = g
    for (let s = 0; s < n; s++) g.add(BigInt(this.#slotLabels[s]!), this.#flat.subarray(s * this.dim, (s + 1) * this.dim))
    this.#flat = new Float32Array(0)
    this.#slotLabels = []
    this.#slotOf.clear()
  }

  #addToGraph(label: number, v: Float32Array): void {
    // The graph grows its capacity itself; removed vectors leave it. Labels are never reused (the
    // store hands out fresh ones).
    this.#hnsw!.add(BigInt(label), v)
  }
}
