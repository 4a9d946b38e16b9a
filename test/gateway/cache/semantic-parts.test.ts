import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { detailSignature } from '../../../gateway/src/cache/semantic/guard.ts'
import { PartitionIndex } from '../../../gateway/src/cache/semantic/vector-index.ts'
import { HitPredictor } from '../../../gateway/src/cache/semantic/predictor.ts'
import { LocalEmbedder } from '../../../gateway/src/cache/semantic/local-embedder.ts'
import { readPairs, report, scorePairs } from '../../../gateway/src/cache/semantic/evaluate.ts'
import { CacheConfigSchema } from '../../../gateway/src/cache/config.ts'

describe('detail signature', () => {
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
    assert.ok(!same('How do I encrypt a file?', 'How do I decrypt a file?'))
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

test('hit predictor skips partitions that never hit, but keeps exploring', () => {
  const cfg = CacheConfigSchema.parse({}).semantic.predictor
  let r = 0
  const p = new HitPredictor(cfg, () => (r = (r + 0.37) % 1))
  for (let i = 0; i < 100; i++) p.observe('cold', false)
  for (let i = 0; i < 100; i++) p.observe('warm', i % 3 === 0)
  assert.equal(p.shouldEmbed('fresh'), true)
  assert.equal(p.shouldEmbed('warm'), true)
  let runs = 0
  for (let i = 0; i < 1000; i++) if (p.shouldEmbed('cold')) runs++
  assert.ok(runs > 0 && runs < 150, `cold partition embedded ${runs}/1000 times`)
})

describe('labelled paraphrase set', () => {
  let embedder: LocalEmbedder
  before(async () => {
    embedder = await LocalEmbedder.start()
  })
  after(async () => embedder.close())

  test('precision first: no must-not-hit pair is served at the default threshold, and most paraphrases are', async () => {
    const pairs = readPairs(fileURLToPath(new URL('../../fixtures/cache/paraphrases.jsonl', import.meta.url)))
    assert.ok(pairs.length >= 200)
    const scored = []
    for (let i = 0; i < pairs.length; i += 16) scored.push(...(await scorePairs(embedder, pairs.slice(i, i + 16))))
    const r = report(scored, CacheConfigSchema.parse({}).semantic.threshold)
    assert.equal(r.falsePositives, 0, JSON.stringify(r.falsePositivePairs.map((p) => [p.a, p.b])))
    assert.ok(r.hitRate >= 0.5, `hit rate ${r.hitRate}`)
  })
})
