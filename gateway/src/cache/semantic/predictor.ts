/**
 * Per-request hit predictor: decides, before anything is embedded, whether a semantic lookup is
 * worth its CPU. The signal is the request itself against a lexical sketch of the partition's
 * prompts (the content-word stems of what it stored, most recent kept): a paraphrase of
 * something stored reuses most of its words, a new question mostly does not.
 *
 * - A request whose known-word share reaches `minOverlap` is always looked up: repeats are served
 *   the moment they arrive, whatever the partition's history (a burst of new questions cannot
 *   switch the cache off for the paraphrases that follow it).
 * - Below that, the share falls in a band (0-25%, 25-50%...) with its own learned hit rate per
 *   partition (plain average during `warmupLookups`, then an EMA): a band that keeps missing is
 *   skipped, except for an `exploreRate` share that notices when it starts hitting.
 */
import type { PredictorConfig } from '../config.ts'
import { lightStem } from './guard.ts'

/** Partitions tracked at most; beyond, the least recently used are forgotten. */
const MAX_PARTITIONS = 50_000
/** Words remembered per partition (the most recently stored win), and over all partitions. */
const MAX_WORDS_PER_PARTITION = 4_096
const MAX_WORDS = 400_000
const BANDS = 4

interface Band {
  rate: number
  lookups: number
}

interface PartitionState {
  /** Content-word stems of stored prompts, in least-recently-stored-first order. */
  readonly words: Set<string>
  readonly bands: Band[]
}

export interface Prediction {
  readonly embed: boolean
  /** Overlap band the request fell in; BANDS for "always looked up". */
  readonly band: number
}

const ALWAYS: Prediction = Object.freeze({ embed: true, band: BANDS })

/** The words the sketch holds for a prompt: light stems of its content words, de-duplicated. */
export function sketchWords(content: readonly string[]): string[] {
  const out: string[] = []
  for (const w of content) {
    const s = lightStem(w)
    if (!out.includes(s)) out.push(s)
  }
  return out
}

export class HitPredictor {
  readonly #config: PredictorConfig
  readonly #partitions = new Map<string, PartitionState>()
  readonly #random: () => number
  #words = 0

  constructor(config: PredictorConfig, random: () => number = Math.random) {
    this.#config = config
    this.#random = random
  }

  /** Share of `words` the partition's sketch has seen (1 for a prompt without content words). */
  overlap(partition: string, words: readonly string[]): number {
    const s = this.#partitions.get(partition)
    if (s === undefined) return 0
    if (words.length === 0) return 1
    let known = 0
    for (const w of words) if (s.words.has(w)) known++
    return known / words.length
  }

  predict(partition: string, words: readonly string[]): Prediction {
    const c = this.#config
    if (c.minHitRate === 0) return ALWAYS
    const overlap = this.overlap(partition, words)
    if (overlap >= c.minOverlap) return ALWAYS
    const band = Math.min(BANDS - 1, Math.floor(overlap * BANDS))
    const b = this.#partitions.get(partition)?.bands[band]
    if (b === undefined || b.lookups < c.warmupLookups || b.rate >= c.minHitRate) return { embed: true, band }
    return { embed: this.#random() < c.exploreRate, band }
  }

  /** A lookup in `band` of `partition` found (or did not find) a servable answer. */
  observe(partition: string, band: number, hit: boolean): void {
    if (band >= BANDS) return
    const s = this.#partitions.get(partition)
    if (s === undefined) return
    const b = s.bands[band]!
    b.lookups++
    const alpha = Math.max(this.#config.learningRate, 1 / b.lookups)
    b.rate += alpha * ((hit ? 1 : 0) - b.rate)
  }

  /** A prompt was stored in `partition`: its words join the sketch. */
  remember(partition: string, words: readonly string[]): void {
    let s = this.#partitions.get(partition)
    if (s === undefined) {
      if (this.#partitions.size >= MAX_PARTITIONS) this.#forgetOldest()
      // Bands start optimistic: a fresh partition is given the benefit of the doubt until it has history.
      s = { words: new Set(), bands: Array.from({ length: BANDS }, () => ({ rate: 1, lookups: 0 })) }
    } else {
      this.#partitions.delete(partition)
    }
    this.#partitions.set(partition, s)
    for (const w of words) {
      if (s.words.delete(w)) this.#words--
      s.words.add(w)
      this.#words++
    }
    while (s.words.size > MAX_WORDS_PER_PARTITION) {
      s.words.delete(s.words.values().next().value!)
      this.#words--
    }
    while (this.#words > MAX_WORDS && this.#partitions.size > 1) this.#forgetOldest()
  }

  #forgetOldest(): void {
    const [key, s] = this.#partitions.entries().next().value!
    this.#partitions.delete(key)
    this.#words -= s.words.size
  }

  /** Learned hit rate of one band, or null without history. */
  rate(partition: string, band: number): number | null {
    const b = this.#partitions.get(partition)?.bands[band]
    return b === undefined || b.lookups === 0 ? null : b.rate
  }
}
