/**
 * The semantic cache as a user meets it: labelled prompts from the development set sent as chat
 * requests through a real gateway (buildServer, listening) in front of the inference simulator,
 * in both traffic orders, reading `x-velox-cache` and the answers that come back. The full sets
 * run in the cache benchmark (`node gateway/benchmarks/micro/cache.ts`); this is every tenth pair.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { readPairs } from '../../../gateway/src/cache/semantic/evaluate.ts'
import { trafficEval } from '../../../gateway/benchmarks/lib/semantic-traffic.ts'

const pairs = readPairs(fileURLToPath(new URL('../../fixtures/cache/pairs-dev.jsonl', import.meta.url))).filter((_, i) => i % 10 === 0)

for (const order of ['interleaved', 'burst-then-repeat'] as const) {
  test(`through the gateway, ${order}: no false hit, and at least 70% of paraphrases served`, async () => {
    // A fresh gateway and simulator. The upstream answers once the semantic lookup (embedding in
    // the worker, search, verification) has decided, as a real model would be slower than it:
    // what is measured is what the cache decides, whatever the machine's load.
    const r = await trafficEval(pairs, order, { upstreamAfterLookup: true })
    assert.equal(r.falseHits, 0, `${JSON.stringify(r.falseHitExamples)}`)
    assert.ok(r.shouldHit >= 12, `${r.shouldHit} should-hit pairs`)
    assert.ok(r.recall >= 0.7, `served ${r.truePositives}/${r.shouldHit}`)
  })
}
