/**
 * Scores the semantic decision (similarity threshold plus the detail check) on labelled pairs:
 * the benchmark reports it and a test holds it to a precision floor.
 */
import { readFileSync } from 'node:fs'
import type { Embedder } from './embedder.ts'
import { detailSignature } from './guard.ts'

export interface LabelledPair {
  readonly a: string
  readonly b: string
  readonly label: 'hit' | 'miss'
  readonly kind: string
}

export interface ScoredPair extends LabelledPair {
  readonly similarity: number
  readonly detailsMatch: boolean
}

export interface PairReport {
  readonly threshold: number
  readonly pairs: number
  readonly shouldHit: number
  readonly mustNotHit: number
  readonly truePositives: number
  readonly falsePositives: number
  /** Of the pairs served as hits, the share that were right to be. 1 when nothing was served. */
  readonly precision: number
  /** Of the should-hit pairs, the share served. */
  readonly hitRate: number
  readonly falsePositivePairs: readonly ScoredPair[]
}

export function readPairs(file: string): LabelledPair[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as LabelledPair)
}

export async function scorePairs(embedder: Embedder, pairs: readonly LabelledPair[]): Promise<ScoredPair[]> {
  return Promise.all(
    pairs.map(async (p) => {
      const [va, vb] = await Promise.all([embedder.embed(p.a), embedder.embed(p.b)])
      let s = 0
      for (let i = 0; i < va.length; i++) s += va[i]! * vb[i]!
      return { ...p, similarity: s, detailsMatch: detailSignature(p.a.trim()) === detailSignature(p.b.trim()) }
    }),
  )
}

export function report(scored: readonly ScoredPair[], threshold: number): PairReport {
  const served = scored.filter((p) => p.similarity >= threshold && p.detailsMatch)
  const tp = served.filter((p) => p.label === 'hit').length
  const fp = served.length - tp
  const shouldHit = scored.filter((p) => p.label === 'hit').length
  return {
    threshold,
    pairs: scored.length,
    shouldHit,
    mustNotHit: scored.length - shouldHit,
    truePositives: tp,
    falsePositives: fp,
    precision: served.length === 0 ? 1 : tp / served.length,
    hitRate: shouldHit === 0 ? 0 : tp / shouldHit,
    falsePositivePairs: served.filter((p) => p.label === 'miss'),
  }
}
