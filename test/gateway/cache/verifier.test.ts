/**
 * The verification step against a real HTTP reranker: a node:http server speaking vLLM's
 * `/rerank` and `/score` shapes (the cross-encoder's scores are scripted), and the cache using it.
 */
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { CacheConfigSchema } from '../../../gateway/src/cache/config.ts'
import type { ResponseCache } from '../../../gateway/src/cache/index.ts'
import { RerankVerifier } from '../../../gateway/src/cache/semantic/rerank-verifier.ts'
import { LexicalVerifier } from '../../../gateway/src/cache/semantic/lexical-verifier.ts'
import { chatJson, chatRequest, makeCache, record } from './helpers.ts'
import { eventually } from '../../helpers/eventually.ts'

interface FakeReranker {
  url: string
  server: Server
  calls: { path: string; body: Record<string, unknown>; auth: string | undefined }[]
  /** Score for a (query, candidate) pair; null answers 500; 'hang' never answers. */
  score: (query: string, doc: string) => number | null | 'hang'
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
}

async function startReranker(): Promise<FakeReranker> {
  const fake: FakeReranker = { url: '', server: null as never, calls: [], score: () => 0.99 }
  fake.server = createServer(async (req, res) => {
    const b = await body(req)
    fake.calls.push({ path: req.url ?? '', body: b, auth: req.headers.authorization })
    const query = String(b.query ?? b.text_1)
    const docs = (b.documents ?? b.text_2) as string[]
    const scores = docs.map((d) => fake.score(query, d))
    if (scores.includes('hang')) return
    if (scores.includes(null)) {
      res.writeHead(500).end('{"error":"boom"}')
      return
    }
    const rows = scores.map((s, index) => (req.url === '/v1/rerank' ? { index, relevance_score: s } : { index, object: 'score', score: s }))
    // Rerank answers best first, as vLLM does: indices say which document each row is.
    if (req.url === '/v1/rerank') rows.reverse()
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(req.url === '/v1/rerank' ? { id: 'r', model: b.model, results: rows } : { id: 's', object: 'list', data: rows }))
  })
  await new Promise<void>((r) => fake.server.listen(0, '127.0.0.1', r))
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}/v1`
  return fake
}

let fake: FakeReranker
before(async () => {
  fake = await startReranker()
})
after(async () => {
  fake.server.closeAllConnections()
  await new Promise((r) => fake.server.close(r))
})

describe('rerank verifier client', () => {
  const config = (over: Record<string, unknown> = {}) =>
    CacheConfigSchema.parse({ semantic: { verifier: { kind: 'rerank', url: fake.url, model: 'BAAI/bge-reranker-v2-m3', ...over } } }).semantic.verifier as Extract<
      ReturnType<typeof CacheConfigSchema.parse>['semantic']['verifier'],
      { kind: 'rerank' }
    >

  test('rerank and score APIs: scores mapped back to candidates by index, minScore decides, key sent', async () => {
    process.env.VELOX_TEST_RERANK_KEY = 'sekret'
    fake.score = (_q, d) => (d.includes('same') ? 0.93 : 0.1)
    for (const api of ['rerank', 'score'] as const) {
      fake.calls.length = 0
      const v = new RerankVerifier(config({ api, apiKeyEnv: 'VELOX_TEST_RERANK_KEY', timeoutMs: 10_000 }), null)
      assert.deepEqual(await v.verify('q', ['other', 'the same', 'another']), [false, true, false])
      assert.equal(fake.calls[0]!.path, `/v1/${api}`)
      assert.equal(fake.calls[0]!.auth, 'Bearer sekret')
      assert.equal(fake.calls[0]!.body.model, 'BAAI/bge-reranker-v2-m3')
      await v.close()
    }
  })

  test('a failing or slow server falls back to the lexical verifier, or misses with fallback: miss', async () => {
    fake.score = () => null
    const lexical = new RerankVerifier(config({ timeoutMs: 10_000 }), new LexicalVerifier())
    assert.deepEqual(await lexical.verify('How do I fix a flat tire?', ['How can I repair a flat tire?', 'How do I fix a flat roof?']), [true, false])
    const strict = new RerankVerifier(config({ fallback: 'miss', timeoutMs: 50 }), null)
    await assert.rejects(strict.verify('a', ['b']))
    // The server never answers: only the 50 ms timeout (an abort) can end the call.
    fake.score = () => 'hang'
    await assert.rejects(strict.verify('a', ['b']), (err: Error) => err.name === 'TimeoutError' || /abort|timeout/i.test(`${err.name} ${err.message}`))
    await lexical.close()
    await strict.close()
  })
})

describe('the cache with a reranker as verifier', () => {
  let cache: ResponseCache
  before(async () => {
    ;({ cache } = await makeCache({ semantic: { enabled: true, verifier: { kind: 'rerank', url: fake.url, model: 'm', fallback: 'miss', timeoutMs: 10_000 } } }))
  })
  after(async () => cache.close())

  const ask = (content: string) => chatRequest({ body: { model: 'llama', temperature: 0, messages: [{ role: 'user', content }] } })
  async function lookup(content: string) {
    const p = cache.semanticLookup(cache.plan(ask(content)), new AbortController().signal)
    return p === null ? null : await p
  }

  test('serves what the cross-encoder accepts, and nothing it rejects or cannot score', async () => {
    fake.score = (q, d) => (q.includes('Python') && d.includes('Python') ? 0.97 : 0.02)
    const plan = cache.plan(ask('How do I reverse a list in Python?'))
    await record(cache, plan, 200, 'application/json', [chatJson('Use reversed().')])
    await cache.settled()
    // Polling: the entry is added once the embedder worker has embedded the prompt.
    await eventually(() => cache.stats().semantic!.entries === 1, { what: 'the entry in the semantic index', intervalMs: 10 })
    fake.calls.length = 0
    const hit = await lookup("What's the way to reverse a list in Python?")
    assert.ok(hit !== null)
    assert.equal(fake.calls.at(-1)!.body.query, "What's the way to reverse a list in Python?")
    assert.deepEqual(fake.calls.at(-1)!.body.documents, ['How do I reverse a list in Python?'])
    fake.score = () => 0.02
    assert.equal(await lookup('How can I reverse a list in Python?'), null)
    fake.score = () => null
    assert.equal(await lookup('How could I reverse a list in Python?'), null)
    // The detail guard runs before the reranker: a swapped number never reaches it.
    fake.calls.length = 0
    fake.score = () => 0.99
    assert.equal(await lookup('How do I reverse 2 lists in Python?'), null)
    assert.equal(fake.calls.length, 0)
  })
})
