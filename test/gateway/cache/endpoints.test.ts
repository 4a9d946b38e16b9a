import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { CacheRequest, ResponseCache } from '../../../gateway/src/cache/index.ts'
import { OpenAIEmbedder } from '../../../gateway/src/cache/semantic/openai-embedder.ts'
import { makeCache, record, ReplayServer, sseDataEvents } from './helpers.ts'
import { eventually } from '../../helpers/eventually.ts'

let cache: ResponseCache
let server: ReplayServer

before(async () => {
  ;({ cache } = await makeCache())
  server = await ReplayServer.start()
})
after(async () => {
  await server.close()
  await cache.close()
})

const req = (endpoint: CacheRequest['endpoint'], body: Record<string, unknown>): CacheRequest => ({ tenant: 'acme', endUser: null, endpoint, model: 'm', body, headers: {} })
const sse = (events: object[], done = true) => [...events.map((e) => Buffer.from(`data: ${JSON.stringify(e)}\n\n`)), ...(done ? [Buffer.from('data: [DONE]\n\n')] : [])]

describe('other endpoints', () => {
  test('completions: a stream is folded and replayed as JSON and as a stream', async () => {
    const body = { model: 'm', prompt: 'Once upon', temperature: 0, stream: true, stream_options: { include_usage: true } }
    const base = { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm' }
    await record(cache, cache.plan(req('completions', body)), 200, 'text/event-stream', sse([
      { ...base, choices: [{ index: 0, text: ' a', logprobs: null, finish_reason: null }] },
      { ...base, choices: [{ index: 0, text: ' time', logprobs: null, finish_reason: 'length' }] },
      { ...base, choices: [], usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 } },
    ]))
    const jsonPlan = cache.plan(req('completions', { ...body, stream: false }))
    const hit = cache.lookup(jsonPlan)
    assert.ok(hit && !(hit instanceof Promise))
    const obj = JSON.parse((await server.fetch((res) => cache.replay(hit, jsonPlan, res, {}))).body)
    assert.equal(obj.choices[0].text, ' a time')
    assert.equal(obj.choices[0].finish_reason, 'length')
    assert.equal(obj.usage.total_tokens, 4)
    const streamPlan = cache.plan(req('completions', body))
    const r = await server.fetch((res) => cache.replay(hit, streamPlan, res, {}))
    const events = sseDataEvents(r.body)
    assert.equal(events.at(-1), '[DONE]')
    assert.equal(JSON.parse(events[0]!).choices[0].text, ' a time')
    assert.equal(JSON.parse(events.at(-2)!).usage.total_tokens, 4)
  })

  test('responses: a stored stream replays as itself and as its final object; a failed one is never stored', async () => {
    const body = { model: 'm', input: 'hi', temperature: 0, stream: true }
    const final = { id: 'resp_1', object: 'response', status: 'completed', output: [{ type: 'message', content: [{ type: 'output_text', text: 'Hello' }] }], usage: { total_tokens: 3 } }
    const ev = (type: string, data: object) => Buffer.from(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`)
    const stream = [ev('response.created', { response: { ...final, status: 'in_progress', output: [] } }), ev('response.output_text.delta', { delta: 'Hello' }), ev('response.completed', { response: final })]
    await record(cache, cache.plan(req('responses', body)), 200, 'text/event-stream', stream)
    const sPlan = cache.plan(req('responses', body))
    const hit = cache.lookup(sPlan)
    assert.ok(hit && !(hit instanceof Promise))
    assert.equal((await server.fetch((res) => cache.replay(hit, sPlan, res, {}))).body, Buffer.concat(stream).toString())
    const jPlan = cache.plan(req('responses', { ...body, stream: false }))
    const jHit = cache.lookup(jPlan)
    assert.ok(jHit && !(jHit instanceof Promise))
    assert.deepEqual(JSON.parse((await server.fetch((res) => cache.replay(jHit, jPlan, res, {}))).body), final)

    const failedBody = { ...body, input: 'fail' }
    await record(cache, cache.plan(req('responses', failedBody)), 200, 'text/event-stream', [ev('response.created', {}), ev('response.failed', { response: { status: 'failed' } })])
    assert.equal(cache.lookup(cache.plan(req('responses', failedBody))), null)
  })

  test('embeddings: cached without any temperature, JSON only', async () => {
    const body = { model: 'e5', input: ['a', 'b'] }
    const answer = JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1] }, { object: 'embedding', index: 1, embedding: [0.2] }], usage: { prompt_tokens: 2, total_tokens: 2 } })
    await record(cache, cache.plan(req('embeddings', body)), 200, 'application/json', [Buffer.from(answer)])
    const plan = cache.plan(req('embeddings', body))
    const hit = cache.lookup(plan)
    assert.ok(hit && !(hit instanceof Promise))
    assert.equal((await server.fetch((res) => cache.replay(hit, plan, res, {}))).body, answer)
    assert.equal(cache.lookup(cache.plan(req('embeddings', { ...body, input: ['a'] }))), null)
  })
})

describe('OpenAI-compatible embedder', () => {
  let upstream: Server
  let url = ''
  let seen: { auth: string | undefined; body: Record<string, unknown> }[] = []
  before(async () => {
    upstream = createServer((rq, rs) => {
      let data = ''
      rq.on('data', (c: Buffer) => (data += c))
      rq.on('end', () => {
        const body = JSON.parse(data) as { input: string }
        seen.push({ auth: rq.headers.authorization, body })
        if (body.input === 'slow') return setTimeout(() => rs.end('{}'), 300)
        if (body.input === 'broken') {
          rs.writeHead(500, { 'content-type': 'application/json' })
          return rs.end('{"error":{"message":"no"}}')
        }
        // A vector from character counts: similar texts, similar vectors.
        const v = new Array(26).fill(0)
        for (const ch of body.input.toLowerCase()) if (ch >= 'a' && ch <= 'z') v[ch.charCodeAt(0) - 97] += 1
        rs.writeHead(200, { 'content-type': 'application/json' })
        rs.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: v }] }))
      })
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  })
  after(async () => {
    upstream.closeAllConnections()
    await new Promise((r) => upstream.close(r))
  })

  test('posts to /v1/embeddings with the key, returns unit vectors, and fails fast', async () => {
    process.env.VELOX_TEST_EMBED_KEY = 'sk-test'
    // The slow answer takes 300 ms, three times the timeout; the others have no deadline to race.
    const e = new OpenAIEmbedder({ kind: 'openai', url, model: 'text-embed', apiKeyEnv: 'VELOX_TEST_EMBED_KEY', version: '3', timeoutMs: 100 })
    const patient = new OpenAIEmbedder({ kind: 'openai', url, model: 'text-embed', apiKeyEnv: 'VELOX_TEST_EMBED_KEY', version: '3', timeoutMs: 60_000 })
    try {
      assert.equal(e.id, 'openai:text-embed@3')
      const v = await patient.embed('abc')
      assert.equal(v.length, 26)
      assert.ok(Math.abs(v.reduce((s, x) => s + x * x, 0) - 1) < 1e-6)
      assert.equal(seen.at(-1)!.auth, 'Bearer sk-test')
      assert.equal(seen.at(-1)!.body.model, 'text-embed')
      await assert.rejects(e.embed('slow'))
      await assert.rejects(patient.embed('broken'))
    } finally {
      await e.close()
      await patient.close()
    }
  })

  test('drives the semantic cache end to end', async () => {
    seen = []
    const { cache: c } = await makeCache({ semantic: { enabled: true, threshold: 0.99, embedder: { kind: 'openai', url, model: 'text-embed' } } })
    try {
      const ask = (text: string): CacheRequest => ({ tenant: 't', endUser: null, endpoint: 'chat.completions', model: 'm', headers: {}, body: { model: 'm', temperature: 0, messages: [{ role: 'user', content: text }] } })
      const plan = c.plan(ask('listen silent'))
      await record(c, plan, 200, 'application/json', [Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'anagram' }, finish_reason: 'stop' }], usage: { total_tokens: 1 } }))])
      await eventually(() => c.stats().semantic!.entries > 0, { what: 'the entry in the semantic index', intervalMs: 10 })
      // Same letters, same content words: the character-count vectors are identical.
      const hit = await c.semanticLookup(c.plan(ask('silent listen')), new AbortController().signal)
      assert.ok(hit && hit.similarity > 0.99)
      assert.equal(await c.semanticLookup(c.plan(ask('listen violent')), new AbortController().signal), null)
      assert.ok(seen.length >= 2)
    } finally {
      await c.close()
    }
  })
})
