/**
 * The embedded verifier: decides whether a retrieved prompt asks the same thing as the request,
 * by aligning their content words with WordNet instead of trusting the embedding alone.
 *
 * Two texts are the same question when their detail signatures are identical (numbers, entities
 * in order, code, URLs, quotes, negation) and every content word of each aligns with one of the
 * other: the same word or lemma, a synonym (a shared synset among the most frequent senses), or a
 * word one WordNet link away through derivation ("explain" / "explanation"), attribute ("old" /
 * "age"), similarity or pertainymy. Antonyms never align. A word left over on one side only is
 * allowed when it adds nothing: a hypernym of another word of the same text, or the answer-type
 * noun of a wh-question ("Which city is the capital of France?"). Words left over on both sides
 * are a substitution ("benefits" / "drawbacks", "cat" / "dog"): a miss. When the text has an
 * asymmetric relation ("to", "from", "than", "vs"), the aligned words must keep their order; in a
 * yes/no question the aligned nouns must ("Is a square a rectangle?" is not "Is a rectangle a square?").
 */
import { analyzeText, lightStem, type TextAnalysis } from './guard.ts'
import type { Verifier } from './verifier.ts'
import { WordNet } from './wordnet.ts'

/** Links that keep the meaning close enough for a word to stand for the other. */
const NEAR_LINKS = new Set(['+', '=', '&', '\\', '<', '^'])
const HYPERNYM_LINKS = new Set(['@', '@i'])
const HYPERNYM_DEPTH = 3
const WH_WORDS = new Set(['which', 'what', 'whats', "what's"])
/** Words that make order matter: "miles to kilometres" is not "kilometres to miles". */
const ASYMMETRIC = /\b(to|into|from|than|vs|versus|over|before|after|instead)\b/i
/** Words right before a content word that make it a thing named ("a square", "the earth"). */
const DETERMINERS = new Set(['a', 'an', 'the', 'every', 'all', 'any', 'some', 'each'])
/**
 * A yes/no question ("Is a square a rectangle?", "Does the moon orbit the earth?") relates the
 * things it names by their places: swap two of them and it asks the converse. Paraphrases of one
 * keep those nouns in order even when the rest moves ("Is eating sushi safe when pregnant?").
 */
const YES_NO = /^\s*(is|are|was|were|am|do|does|did|can|could|will|would|should|shall|may|might|must|has|have|had)\b/i
/** A list ("a fruit or a vegetable") names its items in any order: the yes/no order rule stays out. */
const COORDINATED = /\b(or|and|nor)\b|,/i

export interface Verdict {
  readonly same: boolean
  /** Why not, for tests and the evaluation report. */
  readonly reason: 'same' | 'details' | 'substitution' | 'extra-word' | 'antonym' | 'order'
}

export class LexicalVerifier implements Verifier {
  readonly id = 'lexical-wordnet@3.1'
  readonly kind = 'lexical'
  readonly #wn: WordNet
  readonly #near = new Map<string, Set<string>>()

  constructor(wn: WordNet = WordNet.open()) {
    this.#wn = wn
  }

  async verify(query: string, candidates: readonly string[]): Promise<boolean[]> {
    const q = analyzeText(query)
    return candidates.map((c) => this.compare(q, analyzeText(c), query, c).same)
  }

  /** The decision on two texts, with its reason. */
  judge(a: string, b: string): Verdict {
    return this.compare(analyzeText(a), analyzeText(b), a, b)
  }

  compare(a: TextAnalysis, b: TextAnalysis, aText?: string, bText?: string): Verdict {
    if (a.signature !== b.signature) return { same: false, reason: 'details' }
    const matchA = a.content.map((w) => b.content.findIndex((v) => this.#aligned(w, v)))
    const matchB = b.content.map((v) => a.content.findIndex((w) => this.#aligned(w, v)))
    for (let i = 0; i < a.content.length; i++) {
      const j = matchA[i]!
      if (j === -1) continue
      if (this.#antonyms(a.content[i]!, b.content[j]!)) return { same: false, reason: 'antonym' }
    }
    const extraA = a.content.filter((_, i) => matchA[i] === -1)
    const extraB = b.content.filter((_, j) => matchB[j] === -1)
    if (extraA.length > 0 && extraB.length > 0) {
      for (const w of extraA) for (const v of extraB) if (this.#antonyms(w, v)) return { same: false, reason: 'antonym' }
      return { same: false, reason: 'substitution' }
    }
    if (!this.#redundant(a, matchA) || !this.#redundant(b, matchB)) return { same: false, reason: 'extra-word' }
    if (aText !== undefined && bText !== undefined && ASYMMETRIC.test(aText) && ASYMMETRIC.test(bText)) {
      let last = -1
      for (const j of matchA) {
        if (j === -1) continue
        if (j < last) return { same: false, reason: 'order' }
        last = j
      }
    }
    if (aText !== undefined && bText !== undefined && YES_NO.test(aText) && YES_NO.test(bText) && !COORDINATED.test(aText) && !COORDINATED.test(bText)) {
      let last = -1
      for (let i = 0; i < matchA.length; i++) {
        const j = matchA[i]!
        if (j === -1 || !this.#nounish(a, i) || !this.#nounish(b, j)) continue
        if (j < last) return { same: false, reason: 'order' }
        last = j
      }
    }
    return { same: true, reason: 'same' }
  }

  /**
   * Content word `i` of `t` names a thing rather than a quality or an act: a determiner comes
   * right before it ("a square"), or most of its WordNet senses are nouns.
   */
  #nounish(t: TextAnalysis, i: number): boolean {
    if (DETERMINERS.has(t.before[i]!)) return true
    const senses = this.#wn.synsetsOf(t.content[i]!)
    let nouns = 0
    for (const id of senses) if (id.startsWith('n:')) nouns++
    return nouns > 0 && nouns * 2 > senses.length
  }

  /** Every unmatched word of `t` adds nothing to the question. */
  #redundant(t: TextAnalysis, match: readonly number[]): boolean {
    for (let i = 0; i < t.content.length; i++) {
      if (match[i] !== -1) continue
      const w = t.content[i]!
      if (WH_WORDS.has(t.before[i]!) && this.#wn.synsetsOf(w).some((id) => id.startsWith('n:'))) continue
      if (t.content.some((v, k) => k !== i && this.#isHypernymOf(w, v))) continue
      return false
    }
    return true
  }

  #aligned(w: string, v: string): boolean {
    if (w === v || lightStem(w) === lightStem(v)) return true
    // An adverb stands for its adjective ("safely" / "safe"): WordNet links only some of them.
    const wa = this.#adjectiveOf(w)
    const va = this.#adjectiveOf(v)
    if (wa !== null || va !== null) return this.#aligned(wa ?? w, va ?? v)
    const wl = this.#wn.lemmas(w)
    const vl = this.#wn.lemmas(v)
    if (wl.some((x) => vl.includes(x))) return true
    const ws = this.#wn.synsetsOf(w)
    const vs = this.#wn.synsetsOf(v)
    if (ws.length === 0 || vs.length === 0) return false
    if (ws.some((x) => vs.includes(x))) return !this.#antonyms(w, v)
    const wn = this.#nearOf(w)
    for (const id of vs) if (wn.has(id)) return !this.#antonyms(w, v)
    const vn = this.#nearOf(v)
    for (const id of ws) if (vn.has(id)) return !this.#antonyms(w, v)
    return false
  }

  /** "safely" -> "safe", "happily" -> "happy"; null unless `w` is an -ly adverb of a WordNet adjective. */
  #adjectiveOf(w: string): string | null {
    if (w.length < 5 || !w.endsWith('ly')) return null
    const adj = w.endsWith('ily') ? w.slice(0, -3) + 'y' : w.slice(0, -2)
    return this.#wn.synsetsOf(adj).some((id) => id.startsWith('a:')) ? adj : null
  }

  /** Synsets one near link away from any sense of `w`. */
  #nearOf(w: string): Set<string> {
    let out = this.#near.get(w)
    if (out !== undefined) return out
    out = new Set()
    for (const id of this.#wn.synsetsOf(w)) {
      const s = this.#wn.synset(id)
      if (s === null) continue
      for (const p of s.pointers) if (NEAR_LINKS.has(p.symbol)) out.add(p.target)
    }
    if (this.#near.size > 20_000) this.#near.clear()
    this.#near.set(w, out)
    return out
  }

  #antonyms(w: string, v: string): boolean {
    const vs = new Set(this.#wn.synsetsOf(v))
    for (const id of this.#wn.synsetsOf(w)) {
      const s = this.#wn.synset(id)
      if (s === null) continue
      for (const p of s.pointers) if (p.symbol === '!' && vs.has(p.target)) return true
    }
    return false
  }

  /** `general` is a hypernym (up to three links) of some sense of `specific`. */
  #isHypernymOf(general: string, specific: string): boolean {
    const targets = new Set(this.#wn.synsetsOf(general).filter((id) => id.startsWith('n:') || id.startsWith('v:')))
    if (targets.size === 0) return false
    let frontier = this.#wn.synsetsOf(specific).filter((id) => id.startsWith('n:') || id.startsWith('v:'))
    for (let d = 0; d < HYPERNYM_DEPTH && frontier.length > 0; d++) {
      const next: string[] = []
      for (const id of frontier) {
        const s = this.#wn.synset(id)
        if (s === null) continue
        for (const p of s.pointers) {
          if (!HYPERNYM_LINKS.has(p.symbol)) continue
          if (targets.has(p.target)) return true
          next.push(p.target)
        }
      }
      frontier = next
    }
    return false
  }

  async close(): Promise<void> {
    this.#wn.close()
  }
}
