/**
 * Scores the semantic decision (similarity threshold, then the verifier) on labelled pairs: the
 * component benchmark reports it per category and a test holds the development set to it.
 */
import { readFileSync } from 'node:fs'
import type { Embedder } from './embedder.ts'
import type { Verifier } from './verifier.ts'

export interface LabelledPair {
  readonly a: string
  readonly b: string
  readonly label: 'hit' | 'miss'
  readonly kind: string
  readonly source?: string
}

export interface ScoredPair extends LabelledPair {
  readonly similarity: number
  /** The verifier's decision on the pair. */
  readonly verified: boolean
}

export interface CategoryReport {
  readonly pairs: number
  /** Pairs served as hits. */
  readonly served: number
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
  readonly recall: number
  readonly byKind: Readonly<Record<string, CategoryReport>>
  readonly falsePositivePairs: readonly ScoredPair[]
}

export function readPairs(file: string): LabelledPair[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as LabelledPair)
}

export async function scorePairs(embedder: Embedder, verifier: Verifier, pairs: readonly LabelledPair[]): Promise<ScoredPair[]> {
  const out: ScoredPair[] = []
  // A text in several pairs (a quarter of the development set's) is embedded once: embeddings are deterministic.
  const vectors = new Map<string, Promise<Float32Array>>()
  const embed = (text: string): Promise<Float32Array> => {
    let v = vectors.get(text)
    if (v === undefined) vectors.set(text, (v = embedder.embed(text)))
    return v
  }
  // In slices: the embedder refuses more than 32 in flight.
  for (let i = 0; i < pairs.length; i += 8) {
    out.push(
      ...(await Promise.all(
        pairs.slice(i, i + 8).map(async (p) => {
          const [va, vb] = await Promise.all([embed(p.a), embed(p.b)])
          let s = 0
          for (let k = 0; k < va.length; k++) s += va[k]! * vb[k]!
          const [verified] = await verifier.verify(p.b.trim(), [p.a.trim()])
          return { ...p, similarity: s, verified: verified === true }
        }),
      )),
    )
  }
  return out
}

export function report(scored: readonly ScoredPair[], threshold: number): PairReport {
  const isServed = (p: ScoredPair): boolean => p.similarity >= threshold && p.verified
  const served = scored.filter(isServed)
  const tp = served.filter((p) => p.label === 'hit').length
  const fp = served.length - tp
  const shouldHit = scored.filter((p) => p.label === 'hit').length
  const byKind: Record<string, { pairs: number; served: number }> = {}
  for (const p of scored) {
    const k = `${p.label}:${p.kind}`
    const c = (byKind[k] ??= { pairs: 0, served: 0 })
    c.pairs++
    if (isServed(p)) c.served++
  }
  return {
    threshold,
    pairs: scored.length,
    shouldHit,
    mustNotHit: scored.length - shouldHit,
    truePositives: tp,
    falsePositives: fp,
    precision: served.length === 0 ? 1 : tp / served.length,
    recall: shouldHit === 0 ? 0 : tp / shouldHit,
    byKind,
    falsePositivePairs: served.filter((p) => p.label === 'miss'),
  }
}
