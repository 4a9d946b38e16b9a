import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { analyzeText, detailSignature } from '../../../gateway/src/cache/semantic/guard.ts'
import { PartitionIndex } from '../../../gateway/src/cache/semantic/vector-index.ts'
import { HitPredictor, sketchWords } from '../../../gateway/src/cache/semantic/predictor.ts'
import { LexicalVerifier } from '../../../gateway/src/cache/semantic/lexical-verifier.ts'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CachedEmbedder, embeddingFingerprint } from './cached-embedder.ts'
import { readPairs, report, scorePairs } from '../../../gateway/src/cache/semantic/evaluate.ts'
import { CacheConfigSchema } from '../../../gateway/src/cache/config.ts'

describe('detail signature (numbers, entities in order, code, URLs, quotes, negation)', () => {
  const same = (a: string, b: string) => detailSignature(a) === detailSignature(b)
  test('matches rephrasings that keep every detail', () => {
    assert.ok(same('How do I reverse a list in Python?', "What's the way to reverse a list in Python?"))
    assert.ok(same('Explain quantum entanglement simply.', 'Give me a simple explanation of quantum entanglement.'))
    assert.ok(same('Is 1,000 even?', 'Is 1000 even?'))
  })
  test('differs on numbers, entities, order, code, URLs, quotes and negation', () => {
    assert.ok(!same('Is 17 prime?', 'Is 21 prime?'))
    assert.ok(!same('Is seventeen prime?', 'Is 21 prime?'))
    assert.ok(!same('Capital of France?', 'Capital of Spain?'))
    assert.ok(!same('Convert Celsius to Fahrenheit', 'Convert Fahrenheit to Celsius'))
    assert.ok(!same('What does `a.slice(1)` do?', 'What does `a.splice(1)` do?'))
    assert.ok(!same('Summarize https://x.test/a', 'Summarize https://x.test/b'))
    assert.ok(!same('Is "racecar" a palindrome?', 'Is "raceboat" a palindrome?'))
    assert.ok(!same('Is coffee good for you?', 'Is coffee not good for you?'))
  })
})

describe('partition index', () => {
  const dim = 32
  const unit = (seed: number) => {
    const v = new Float32Array(dim)
    let s = 0
    for (let i = 0; i < dim; i++) {
      v[i] = Math.sin(seed * 12.9898 + i * 78.233) * 43758.5453 % 1
      s += v[i]! * v[i]!
    }
    for (let i = 0; i < dim; i++) v[i]! /= Math.sqrt(s)
    return v
  }
  test('exact scan, then HNSW past the threshold, finds stored vectors and forgets removed ones', () => {
    const idx = new PartitionIndex(dim, 50)
    for (let i = 1; i <= 40; i++) idx.add(i, unit(i))
    assert.equal(idx.usesGraph, false)
    assert.equal(idx.search(unit(7), 1)[0]!.label, 7)
    for (let i = 41; i <= 400; i++) idx.add(i, unit(i))
    assert.equal(idx.usesGraph, true)
    let found = 0
    for (let i = 1; i <= 400; i += 7) if (idx.search(unit(i), 1)[0]?.label === i) found++
    assert.ok(found >= 55, `recall ${found}/58`)
    idx.remove(7)
    assert.notEqual(idx.search(unit(7), 1)[0]?.label, 7)
    for (let i = 1000; i < 1400; i++) idx.add(i, unit(i))
    assert.equal(idx.size, 799)
    assert.ok(Math.abs(idx.search(unit(1200), 1)[0]!.similarity - 1) < 1e-4)
  })
})

describe('hit predictor', () => {
  const cfg = CacheConfigSchema.parse({}).semantic.predictor
  const words = (t: string) => sketchWords(analyzeText(t).content)

  test('a burst of new questions does not switch the cache off: the repeats that follow are looked up', () => {
    let r = 0
    const p = new HitPredictor(cfg, () => (r = (r + 0.37) % 1))
    const burst = Array.from({ length: 60 }, (_, i) => `Tell me about topic${i} and subject${i}`)
    for (const q of burst) {
      // Each new question is looked up (or skipped) against what is stored, misses, then is stored.
      const pr = p.predict('part', words(q))
      if (pr.embed) p.observe('part', pr.band, false)
      p.remember('part', words(q))
    }
    for (const q of burst.slice(-40)) assert.equal(p.predict('part', words('Could you tell me about ' + q.slice(14))).embed, true, q)
  })

  test('requests unlike anything stored are skipped once their band keeps missing, but exploration goes on', () => {
    let r = 0
    const p = new HitPredictor(cfg, () => (r = (r + 0.37) % 1))
    p.remember('part', words('How do I reverse a list in Python?'))
    let embedded = 0
    for (let i = 0; i < 1000; i++) {
      const pr = p.predict('part', words(`Unrelated question number ${i} about gardening${i}`))
      assert.ok(pr.band < 4)
      if (pr.embed) {
        embedded++
        p.observe('part', pr.band, false)
      }
    }
    assert.ok(embedded > cfg.warmupLookups && embedded < 120, `embedded ${embedded}/1000`)
    // The band starts hitting: noticed through exploration, and the band comes back.
    for (let i = 0; i < 200; i++) {
      const pr = p.predict('part', words(`Unrelated question number ${i} about gardening${i}`))
      if (pr.embed) p.observe('part', pr.band, true)
    }
    assert.equal(p.predict('part', words('Something else entirely')).embed, true)
  })

  test('the sketch keeps a large partition\'s words, and forgets the least recently stored past its bound', () => {
    const p = new HitPredictor(cfg)
    p.remember('part', words('What is photosynthesis?'))
    assert.equal(p.overlap('part', words('Explain photosynthesis')), 1)
    for (let i = 0; i < 1000; i++) p.remember('part', [`w${i}`, `v${i}`])
    assert.equal(p.overlap('part', words('Explain photosynthesis')), 1)
    for (let i = 0; i < 3000; i++) p.remember('part', [`x${i}`])
    assert.equal(p.overlap('part', words('Explain photosynthesis')), 0)
    assert.equal(p.overlap('unknown', words('photosynthesis')), 0)
  })
})

describe('lexical verifier (WordNet)', () => {
  const v = new LexicalVerifier()
  after(() => v.close())
  test('aligns synonyms, attributes, derivations and answer-type nouns', () => {
    for (const [a, b] of [
      ['What is the capital of France?', 'Which city is the capital of France?'],
      ['How old is the universe?', 'What is the age of the universe?'],
      ['How do I fix a leaky faucet?', 'How can I repair a leaky faucet?'],
      ['Explain quantum entanglement simply.', 'Give me a simple explanation of quantum entanglement.'],
      ['How do I lose weight safely?', 'What is a safe way to lose weight?'],
      ['Is a whale a mammal?', 'Is the whale a mammal?'],
      ['Is a tomato a fruit or a vegetable?', 'Is the tomato a vegetable or a fruit?'],
      ['Explain the causes of the French Revolution.', 'What caused the French Revolution?'],
      ['Describe the water cycle.', 'Give me a description of the water cycle.'],
    ]) assert.equal(v.judge(a!, b!).same, true, `${a} / ${b}: ${v.judge(a!, b!).reason}`)
  })
  test('rejects antonyms, substitutions, scope changes, swapped order and differing details', () => {
    for (const [a, b, reason] of [
      ['What is the largest planet?', 'What is the smallest planet?', /antonym|substitution/],
      ['How do I encrypt a file?', 'How do I decrypt a file?', /substitution/],
      ['How do I scale up a deployment?', 'How do I scale down a deployment?', /substitution|antonym/],
      ['How do I learn to swim?', 'How do I learn to swim as an adult?', /extra-word/],
      ['Convert 5 miles to kilometers.', 'Convert 5 kilometers to miles.', /order/],
      ['Is a square a rectangle?', 'Is a rectangle a square?', /order/],
      ['Does the moon orbit the earth?', 'Does the earth orbit the moon?', /order/],
      ['Do cats eat mice?', 'Do mice eat cats?', /order/],
      ['Is 17 prime?', 'Is 21 prime?', /details/],
      ['Is coffee good for you?', 'Is coffee not good for you?', /details/],
      // "causes" is request phrasing in "What causes X?", a topic in "the causes of X".
      ['Describe the French Revolution.', 'Explain the causes of the French Revolution.', /extra-word/],
    ] as const) {
      const verdict = v.judge(a, b)
      assert.equal(verdict.same, false, `${a} / ${b}`)
      assert.match(verdict.reason, reason)
    }
  })
})

describe('labelled pairs: development set', () => {
  // The model's vectors for the set are kept between runs (cached-embedder.ts); one is recomputed each run.
  const embedder = new CachedEmbedder()
  const verifier = new LexicalVerifier()
  after(async () => {
    await embedder.close()
    await verifier.close()
  })

  test('a kept vector that differs from what the model computes fails the run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'velox-embeddings-'))
    const wrong = new Float32Array(512).fill(1 / Math.sqrt(512))
    const key = (await import('node:crypto')).createHash('sha256').update('How do I fix a flat tire?').digest('base64url')
    writeFileSync(join(dir, `${embeddingFingerprint()}.json`), JSON.stringify({ id: 'x', vectors: { [key]: Buffer.from(wrong.buffer).toString('base64') } }))
    const stale = new CachedEmbedder(dir)
    try {
      await assert.rejects(stale.embed('How do I fix a flat tire?'), /differs from the model's/)
    } finally {
      await stale.close()
    }
  })

  test('precision first: no must-not-hit pair is served at the default threshold, and most paraphrases are', async () => {
    const pairs = readPairs(fileURLToPath(new URL('../../fixtures/cache/pairs-dev.jsonl', import.meta.url)))
    assert.ok(pairs.length >= 300)
    const scored = await scorePairs(embedder, verifier, pairs)
    assert.equal(embedder.computed + embedder.served, new Set(pairs.flatMap((p) => [p.a, p.b])).size, 'every distinct text embedded once')
    const r = report(scored, CacheConfigSchema.parse({}).semantic.threshold)
    assert.equal(r.falsePositives, 0, JSON.stringify(r.falsePositivePairs.map((p) => [p.a, p.b])))
    assert.ok(r.recall >= 0.8, `recall ${r.recall}`)
  })
})
