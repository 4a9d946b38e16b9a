import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { CachedResponse, LookupPlan, ResponseCache } from '../../../gateway/src/cache/index.ts'
import type { Registry } from 'prom-client'
import { chatJson, chatRequest, chatSse, makeCache, record, ReplayServer, sseDataEvents } from './helpers.ts'

let cache: ResponseCache
let registry: Registry
let server: ReplayServer

before(async () => {
  ;({ cache, registry } = await makeCache({ maxEntryBytes: 4096 }))
  server = await ReplayServer.start()
})
after(async () => {
  await server.close()
  await cache.close()
})

let n = 0
/** A fresh request each time, so tests do not see each other's entries. */
function fresh(stream: boolean, includeUsage = false) {
  n++
  const body: Record<string, unknown> = { model: 'llama', temperature: 0, messages: [{ role: 'user', content: `question ${n}` }] }
  if (stream) body.stream = true
  if (includeUsage) body.stream_options = { include_usage: true }
  return { req: chatRequest({ body }), body }
}

function lookupSync(plan: ReturnType<ResponseCache['plan']>): CachedResponse | null {
  const r = cache.lookup(plan)
  assert.ok(!(r instanceof Promise), 'memory lookup answers synchronously')
  return r
}

describe('exact cache, memory backend', () => {
  test('JSON stored, JSON replayed byte for byte with hit headers', async () => {
    const { req } = fresh(false)
    const plan = cache.plan(req)
    assert.equal(lookupSync(plan), null)
    const upstream = chatJson('Paris.')
    assert.ok(await record(cache, plan, 200, 'application/json', [upstream.subarray(0, 10), upstream.subarray(10)]))
    const hit = lookupSync(cache.plan(req))
    assert.ok(hit)
    const r = await server.fetch((res) => cache.replay(hit, plan, res, { 'x-request-id': 'abc' }))
    assert.equal(r.status, 200)
    assert.equal(r.headers['x-velox-cache'], 'hit')
    assert.equal(r.headers['x-request-id'], 'abc')
    assert.match(String(r.headers['content-type']), /application\/json/)
    assert.equal(r.body, upstream.toString())
  })

  test('a stream stored and replayed as a stream: chunked SSE, usage when asked, [DONE] last', async () => {
    const { req } = fresh(true, true)
    const plan = cache.plan(req) as LookupPlan
    assert.ok(plan.stream && plan.includeUsage)
    await record(cache, plan, 200, 'text/event-stream', chatSse(['Pa', 'ris', '.'], { usage: true }))
    const hit = lookupSync(plan)
    assert.ok(hit)
    const r = await server.fetch((res) => cache.replay(hit, plan, res, {}))
    assert.match(String(r.headers['content-type']), /text\/event-stream/)
    assert.equal(r.headers['transfer-encoding'], 'chunked')
    const events = sseDataEvents(r.body)
    assert.equal(events.at(-1), '[DONE]')
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Paris.')
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'chatcmpl-2'))
    const last = chunks.at(-1)
    assert.deepEqual(last.choices, [])
    assert.equal(last.usage.completion_tokens, 3)
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'stop')
  })

  test('a stored stream answers a JSON request with the assembled completion', async () => {
    const { req, body } = fresh(true, true)
    await record(cache, cache.plan(req), 200, 'text/event-stream', chatSse(['Hel', 'lo'], { usage: true }))
    const jsonReq = chatRequest({ body: { ...body, stream: false } })
    const plan = cache.plan(jsonReq)
    const hit = lookupSync(plan)
    assert.ok(hit)
    const r = await server.fetch((res) => cache.replay(hit, plan, res, {}))
    const obj = JSON.parse(r.body)
    assert.equal(obj.object, 'chat.completion')
    assert.equal(obj.choices[0].message.content, 'Hello')
    assert.equal(obj.choices[0].message.role, 'assistant')
    assert.equal(obj.choices[0].finish_reason, 'stop')
    assert.equal(obj.usage.total_tokens, 11)
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body))
  })

  test('a stored JSON answer streams to a streaming client, usage only when asked', async () => {
    const { req, body } = fresh(false)
    await record(cache, cache.plan(req), 200, 'application/json; charset=utf-8', [chatJson('Forty-two.')])
    for (const includeUsage of [false, true]) {
      const plan = cache.plan(chatRequest({ body: { ...body, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) } }))
      const hit = lookupSync(plan)
      assert.ok(hit)
      const r = await server.fetch((res) => cache.replay(hit, plan, res, {}))
      const events = sseDataEvents(r.body)
      assert.equal(events.at(-1), '[DONE]')
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
      assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Forty-two.')
      assert.equal(chunks.some((c) => c.usage), includeUsage)
      assert.ok(r.pieces >= 1)
    }
  })

  test('a stream stored without usage is not served where usage is needed', async () => {
    const { req, body } = fresh(true)
    await record(cache, cache.plan(req), 200, 'text/event-stream', chatSse(['ok']))
    assert.ok(lookupSync(cache.plan(req)), 'same shape, no usage asked: served')
    assert.equal(lookupSync(cache.plan(chatRequest({ body: { ...body, stream_options: { include_usage: true } } }))), null)
    assert.equal(lookupSync(cache.plan(chatRequest({ body: { ...body, stream: false } }))), null)
  })

  test('tool calls survive the stream fold', async () => {
    const { req, body } = fresh(true)
    const base = { id: 'c3', object: 'chat.completion.chunk', created: 1, model: 'm' }
    const ev = (o: object) => Buffer.from(`data: ${JSON.stringify({ ...base, ...o })}\n\n`)
    await record(cache, cache.plan(req), 200, 'text/event-stream', [
      ev({ choices: [{ index: 0, delta: { role: 'assistant', tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }, finish_reason: null }] }),
      ev({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }, finish_reason: null }] }),
      ev({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }, finish_reason: null }] }),
      ev({ choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }),
      Buffer.from('data: [DONE]\n\n'),
    ])
    const plan = cache.plan(chatRequest({ body }))
    const hit = lookupSync(plan)
    assert.ok(hit)
    const r = await server.fetch((res) => cache.replay(hit, plan, res, {}))
    const chunks = sseDataEvents(r.body).slice(0, -1).map((e) => JSON.parse(e))
    const tc = chunks[0].choices[0].delta.tool_calls[0]
    assert.deepEqual(tc, { index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } })
    assert.equal(chunks[1].choices[0].finish_reason, 'tool_calls')
  })
})

describe('only complete, successful answers are stored', () => {
  const cases: [string, number, string, Buffer[], 'end' | 'abort'][] = [
    ['a stream without [DONE]', 200, 'text/event-stream', chatSse(['par'], { done: false }), 'end'],
    ['a stream with an error event', 200, 'text/event-stream', chatSse(['par'], { error: true }), 'end'],
    ['an aborted stream', 200, 'text/event-stream', chatSse(['Paris']), 'abort'],
    ['a 500', 500, 'application/json', [Buffer.from('{"error":{"message":"boom"}}')], 'end'],
    ['a 200 error body', 200, 'application/json', [Buffer.from('{"error":{"message":"boom"}}')], 'end'],
    ['a truncated JSON body', 200, 'application/json', [chatJson('Paris').subarray(0, 40)], 'end'],
    ['an unfinished choice', 200, 'application/json', [chatJson('Par', { finish: null })], 'end'],
    ['a body over maxEntryBytes', 200, 'application/json', [chatJson('x'.repeat(5000))], 'end'],
    ['an HTML page', 200, 'text/html', [Buffer.from('<html></html>')], 'end'],
  ]
  for (const [name, status, ct, chunks, end] of cases) {
    test(`${name} never hits`, async () => {
      const { req } = fresh(ct === 'text/event-stream')
      await record(cache, cache.plan(req), status, ct, chunks, end)
      assert.equal(lookupSync(cache.plan(req)), null)
    })
  }

  test('a no-cache refresh replaces a stored answer', async () => {
    const { req } = fresh(false)
    await record(cache, cache.plan(req), 200, 'application/json', [chatJson('old')])
    const refresh = cache.plan({ ...req, headers: { 'cache-control': 'no-cache' } })
    assert.equal(cache.lookup(refresh), null)
    await record(cache, refresh, 200, 'application/json', [chatJson('new')])
    const hit = lookupSync(cache.plan(req))
    assert.equal(JSON.parse(hit!.body.toString()).choices[0].message.content, 'new')
  })
})

describe('isolation and expiry', () => {
  test('another tenant, another system prompt, other parameters never hit', async () => {
    const body = { model: 'llama', temperature: 0, max_tokens: 10, messages: [{ role: 'system', content: 'A' }, { role: 'user', content: 'isolation?' }] }
    await record(cache, cache.plan(chatRequest({ body })), 200, 'application/json', [chatJson('yes')])
    assert.ok(lookupSync(cache.plan(chatRequest({ body }))))
    assert.equal(lookupSync(cache.plan(chatRequest({ tenant: 'evil', body }))), null)
    assert.equal(lookupSync(cache.plan(chatRequest({ body: { ...body, max_tokens: 11 } }))), null)
    assert.equal(lookupSync(cache.plan(chatRequest({ body: { ...body, messages: [{ role: 'system', content: 'B' }, body.messages[1]] } }))), null)
  })

  test('entries expire after their TTL', async (t) => {
    const { cache: short } = await makeCache({ ttlSeconds: 1, ttlJitter: 0 })
    try {
      const req = chatRequest()
      // The clock is the test's from here: stored at `now`, the entry lives 1 s of it.
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
      await record(short, short.plan(req), 200, 'application/json', [chatJson('soon gone')])
      assert.ok(short.lookup(short.plan(req)))
      t.mock.timers.tick(999)
      assert.ok(short.lookup(short.plan(req)), 'still fresh just before its TTL')
      t.mock.timers.tick(2)
      assert.equal(short.lookup(short.plan(req)), null)
    } finally {
      await short.close()
    }
  })

  test('memory stays within maxBytes, evicting least recently used', async () => {
    const { cache: small, registry: reg } = await makeCache({ maxBytes: 20_000 })
    try {
      const reqs = Array.from({ length: 60 }, (_, i) => chatRequest({ body: { model: 'm', temperature: 0, messages: [{ role: 'user', content: 'q' + i }] } }))
      for (const r of reqs) await record(small, small.plan(r), 200, 'application/json', [chatJson('answer with some bytes '.repeat(20) + Math.random())])
      assert.ok(small.stats().exact!.bytes <= 20_000)
      assert.equal(small.lookup(small.plan(reqs[0]!)), null, 'oldest evicted')
      assert.ok(small.lookup(small.plan(reqs[59]!)), 'newest kept')
      const text = await reg.metrics()
      assert.match(text, /velox_cache_evictions_total\{tier="exact",cause="capacity"\} [1-9]/)
    } finally {
      await small.close()
    }
  })
})

test('metrics are registered with the velox_cache_ prefix and count what happened', async () => {
  const text = await registry.metrics()
  for (const name of ['hits_total', 'misses_total', 'bypasses_total', 'semantic_similarity', 'lookup_seconds', 'embedding_seconds', 'bytes', 'evictions_total', 'redis_errors_total']) {
    assert.match(text, new RegExp(`velox_cache_${name}`))
  }
  assert.match(text, /velox_cache_hits_total\{kind="exact"\} [1-9]/)
  assert.match(text, /velox_cache_bytes\{tier="exact"\} [1-9]/)
})

describe('memory backend: answers are stored unchecked and validated on their first hit', () => {
  const storeCount = (outcome: string): number =>
    ((registry.getSingleMetric('velox_cache_stores_total') as unknown as { get(): { values: { labels: Record<string, string>; value: number }[] } }).get().values.find((v) => v.labels['kind'] === 'exact' && v.labels['outcome'] === outcome)?.value ?? 0)

  test('a 200 error body is held until its first lookup, which drops it and counts it rejected', async () => {
    const { req } = fresh(false)
    const plan = cache.plan(req)
    const entries = cache.stats().exact!.entries
    const rejected = storeCount('rejected')
    await record(cache, plan, 200, 'application/json', [Buffer.from(JSON.stringify({ error: { message: 'overloaded' } }))])
    // Kept without being parsed: the miss paid only for a copy of the bytes.
    assert.equal(cache.stats().exact!.entries, entries + 1)
    assert.equal(storeCount('rejected'), rejected)
    assert.equal(lookupSync(cache.plan(req)), null)
    assert.equal(cache.stats().exact!.entries, entries)
    assert.equal(storeCount('rejected'), rejected + 1)
  })

  test('a large stream is compressed while unchecked, then folded on its first hit and served from then on', async () => {
    const { req, body } = fresh(true)
    const pieces = Array.from({ length: 18 }, (_, i) => `word${i} `)
    const sse = chatSse(pieces)
    const rawBytes = sse.reduce((n, c) => n + c.length, 0)
    assert.ok(rawBytes > 1024 && rawBytes < 4096, `${rawBytes} bytes`)
    const before = cache.stats().exact!.bytes
    await record(cache, cache.plan(req), 200, 'text/event-stream', sse)
    await cache.settled()
    assert.ok(cache.stats().exact!.bytes - before < rawBytes / 2, 'held compressed')
    const jsonPlan = cache.plan(chatRequest({ body: { ...body, stream: false, stream_options: undefined } }))
    // The stream carries no usage, so it cannot answer a JSON request; it is still checked (and kept).
    assert.equal(lookupSync(jsonPlan), null)
    const hit = lookupSync(cache.plan(req))
    assert.ok(hit)
    assert.equal(hit.shape, 'json')
    assert.equal(hit.sourceShape, 'sse')
    assert.equal(JSON.parse(hit.body.toString()).choices[0].message.content, pieces.join(''))
    await cache.settled()
    const again = lookupSync(cache.plan(req))
    assert.ok(again)
    assert.equal(again.body.toString(), hit.body.toString())
  })
})
