/**
 * The semantic cache as a user meets it: labelled prompts from the development set sent as chat
 * requests through a real gateway (buildServer, listening) in front of the inference simulator,
 * in both traffic orders, reading `x-velox-cache` and the answers that come back. The full sets
 * run in the cache benchmark (`node gateway/benchmarks/micro/cache.ts`); this is every tenth pair.
 *
 * The vectors are the embedded model's, served to the gateway over the OpenAI embeddings API from
 * the kept ones (cached-embedder.ts: computed once, one recomputed each run to check the file),
 * so the two orders do not each load the model and embed every prompt again (about 5 s of CPU).
 * The embedded model inside a gateway is semantic.test.ts's and cache-gateway.test.ts's subject.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { readPairs } from '../../../gateway/src/cache/semantic/evaluate.ts'
import { trafficEval } from '../../../gateway/benchmarks/lib/semantic-traffic.ts'
import { CachedEmbedder } from './cached-embedder.ts'

const pairs = readPairs(fileURLToPath(new URL('../../fixtures/cache/pairs-dev.jsonl', import.meta.url))).filter((_, i) => i % 10 === 0)

const embedder = new CachedEmbedder()
let embeddings: http.Server
let embeddingsUrl = ''

before(async () => {
  embeddings = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const { input } = JSON.parse(Buffer.concat(chunks).toString()) as { input: string }
      embedder.embed(input).then(
        (v) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: Array.from(v) }] })),
        (err: Error) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: err.message } })),
      )
    })
  })
  embeddings.listen(0, '127.0.0.1')
  await once(embeddings, 'listening')
  embeddingsUrl = `http://127.0.0.1:${(embeddings.address() as AddressInfo).port}`
})

after(async () => {
  embeddings.closeAllConnections()
  embeddings.close()
  await embedder.close()
})

for (const order of ['interleaved', 'burst-then-repeat'] as const) {
  test(`through the gateway, ${order}: no false hit, and at least 70% of paraphrases served`, async () => {
    // A fresh gateway and simulator. The upstream answers once the semantic lookup (embedding,
    // search, verification) has decided, as a real model would be slower than it: what is
    // measured is what the cache decides, whatever the machine's load.
    const r = await trafficEval(pairs, order, { upstreamAfterLookup: true, semantic: { embedder: { kind: 'openai', url: embeddingsUrl, model: 'use-lite', timeoutMs: 60_000 } } })
    assert.equal(r.falseHits, 0, `${JSON.stringify(r.falseHitExamples)}`)
    assert.ok(r.shouldHit >= 12, `${r.shouldHit} should-hit pairs`)
    assert.ok(r.recall >= 0.7, `served ${r.truePositives}/${r.shouldHit}`)
  })
}
