/**
 * The word-piece tokenizer of the Universal Sentence Encoder lite: a unigram segmentation that
 * picks, for every prefix of the input, the highest-scoring split into vocabulary pieces
 * (sentencepiece conventions: NFKC, spaces become U+2581, a leading U+2581). Unknown symbols map
 * to id 0 and runs of them collapse into one, as in the reference implementation.
 */

const SEPARATOR = '\u2581'
/** Ids 0-5 are control symbols and never matched against text. */
const RESERVED = 6

interface TrieNode {
  readonly children: Map<string, TrieNode>
  id: number
  score: number
}

const newNode = (): TrieNode => ({ children: new Map(), id: -1, score: 0 })

export class UseTokenizer {
  readonly #root = newNode()
  readonly #lengths: Int32Array

  constructor(vocabulary: readonly (readonly [string, number])[]) {
    this.#lengths = new Int32Array(vocabulary.length)
    for (let i = RESERVED; i < vocabulary.length; i++) {
      const [piece, score] = vocabulary[i]!
      let node = this.#root
      let len = 0
      for (const sym of piece) {
        let next = node.children.get(sym)
        if (next === undefined) {
          next = newNode()
          node.children.set(sym, next)
        }
        node = next
        len++
      }
      node.id = i
      node.score = score
      this.#lengths[i] = len
    }
  }

  encode(text: string): number[] {
    const normalised = text.normalize('NFKC')
    if (normalised.length === 0) return []
    const symbols = Array.from(SEPARATOR + normalised.replaceAll(' ', SEPARATOR))
    const n = symbols.length
    const best = new Float64Array(n + 1)
    const bestId = new Int32Array(n + 1)
    const bestLen = new Int32Array(n + 1)
    const reached = new Uint8Array(n + 1)
    reached[0] = 1
    for (let start = 0; start < n; start++) {
      if (reached[start] === 0) continue
      let node: TrieNode | undefined = this.#root
      let matched = false
      for (let end = start; end < n; end++) {
        node = node.children.get(symbols[end]!)
        if (node === undefined) break
        if (node.id >= 0) {
          matched = true
          this.#relax(best, bestId, bestLen, reached, start, end + 1, node.score, node.id)
        }
      }
      if (!matched) this.#relax(best, bestId, bestLen, reached, start, start + 1, 0, 0)
    }
    const ids: number[] = []
    for (let pos = n; pos > 0; pos -= bestLen[pos]!) ids.push(bestId[pos]!)
    ids.reverse()
    const merged: number[] = []
    for (let i = 0; i < ids.length; i++) if (!(ids[i] === 0 && i > 0 && ids[i - 1] === 0)) merged.push(ids[i]!)
    return merged
  }

  #relax(best: Float64Array, bestId: Int32Array, bestLen: Int32Array, reached: Uint8Array, start: number, end: number, score: number, id: number): void {
    const s = best[start]! + score
    if (reached[end] === 0 || s >= best[end]!) {
      best[end] = s
      bestId[end] = id
      bestLen[end] = end - start
      reached[end] = 1
    }
  }
}
