import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { CacheRequest, ResponseCache } from '../../../gateway/src/cache/index.ts'
import type { Registry } from 'prom-client'
import { chatJson, chatRequest, chatSse, makeCache, record, RedisServer, ReplayServer, sseDataEvents } from './helpers.ts'
import { eventually } from '../../helpers/eventually.ts'

const SEM = { semantic: { enabled: true } }
let cache: ResponseCache
let registry: Registry
let server: ReplayServer

before(async () => {
  ;({ cache, registry } = await makeCache(SEM))
  server = await ReplayServer.start()
})
after(async () => {
  await server.close()
  await cache.close()
})

function ask(text: string, over: Partial<CacheRequest> & { system?: string; history?: object[]; extra?: object; stream?: boolean } = {}): CacheRequest {
  const { system, history, extra, stream, ...rest } = over
  return chatRequest({
    ...rest,
    body: {
      model: 'llama',
      temperature: 0,
      max_tokens: 64,
      ...(stream ? { stream: true } : {}),
      ...extra,
      messages: [{ role: 'system', content: system ?? 'You are terse.' }, ...(history ?? []), { role: 'user', content: text }],
    },
  })
}

async function store(c: ResponseCache, req: CacheRequest, answer: string): Promise<void> {
  const plan = c.plan(req)
  // A miss first, as live traffic would do: its embedding is reused when the answer is stored.
  await c.semanticLookup(plan, new AbortController().signal)
  const entries = c.stats().semantic!.entries
  await record(c, plan, 200, 'application/json', [chatJson(answer)])
  await eventually(() => c.stats().semantic!.entries > entries, { what: 'the entry in the semantic index', intervalMs: 10 })
}

async function semantic(c: ResponseCache, req: CacheRequest) {
  const p = c.semanticLookup(c.plan(req), new AbortController().signal)
  return p === null ? null : await p
}

describe('semantic cache, embedded model', () => {
  before(async () => {
    await store(cache, ask('How do I reverse a list in Python?'), 'Use list.reverse() or reversed().')
    await store(cache, ask('Is 17 prime?'), 'Yes.')
  })

  test('a paraphrase hits and replays with the similarity header, as a stream when asked', async () => {
    const req = ask("What's the way to reverse a list in Python?", { stream: true })
    const hit = await semantic(cache, req)
    assert.ok(hit, 'paraphrase should hit')
    assert.ok(hit.similarity >= 0.85 && hit.similarity <= 1.0001)
    const r = await server.fetch((res) => cache.replay(hit.response, cache.plan(req), res, {}))
    assert.equal(r.headers['x-velox-cache'], 'semantic-hit')
    assert.equal(Number(r.headers['x-velox-cache-similarity']).toFixed(2), hit.similarity.toFixed(2))
    const events = sseDataEvents(r.body)
    assert.equal(events.at(-1), '[DONE]')
    assert.match(events.map((e) => (e === '[DONE]' ? '' : JSON.parse(e).choices[0]?.delta?.content ?? '')).join(''), /list\.reverse/)
  })

  const mustNotHit: [string, CacheRequest][] = [
    ['numbers swapped', ask('Is 21 prime?')],
    ['a near topic', ask('How do I sort a list in Python?')],
    ['an entity swapped', ask('How do I reverse a list in Ruby?')],
    ['another tenant', ask('How can I reverse a list in Python?', { tenant: 'other' })],
    ['another system prompt', ask('How can I reverse a list in Python?', { system: 'You are verbose.' })],
    ['earlier turns', ask('How can I reverse a list in Python?', { history: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] })],
    ['another max_tokens', ask('How can I reverse a list in Python?', { extra: { max_tokens: 65 } })],
    ['another top_p', ask('How can I reverse a list in Python?', { extra: { top_p: 0.9 } })],
    ['a stop sequence', ask('How can I reverse a list in Python?', { extra: { stop: ['\n'] } })],
    ['tools offered', ask('How can I reverse a list in Python?', { extra: { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] } })],
  ]
  for (const [name, req] of mustNotHit) {
    test(`never hits: ${name}`, async () => {
      assert.equal(cache.plan(req).mode, 'lookup')
      assert.equal(await semantic(cache, req), null)
    })
  }

  test('a sampled request (temperature above 0) bypasses both tiers', () => {
    const plan = cache.plan(ask('How can I reverse a list in Python?', { extra: { temperature: 0.000001 } }))
    assert.equal(plan.mode === 'bypass' && plan.reason, 'temperature')
    assert.equal(cache.semanticLookup(plan, new AbortController().signal), null)
  })

  test('requests with tool calls, empty or long user text are not semantically cached', () => {
    const toolTurn = ask('And now?', { history: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: '1' }] })
    for (const req of [toolTurn, ask('   '), ask('x'.repeat(5_000))]) {
      const plan = cache.plan(req)
      assert.ok(plan.mode === 'lookup' && plan.semantic === null)
      assert.equal(cache.semanticLookup(plan, new AbortController().signal), null)
    }
  })

  test('an empty partition answers null at once, without embedding', () => {
    assert.equal(cache.semanticLookup(cache.plan(ask('Anything', { system: 'A partition nobody wrote to' })), new AbortController().signal), null)
  })

  test('an aborted lookup resolves to null', async () => {
    const ac = new AbortController()
    const p = cache.semanticLookup(cache.plan(ask('How might I reverse a list in Python?')), ac.signal)
    assert.ok(p)
    ac.abort()
    assert.equal(await p, null)
  })

  test('only complete answers reach the semantic tier', async () => {
    const req = ask('What is the boiling point of water at sea level?')
    const plan = cache.plan(req)
    await cache.semanticLookup(plan, new AbortController().signal)
    const rejected = async () => (await registry.getSingleMetric('velox_cache_stores_total')!.get()).values.find((v) => v.labels['kind'] === 'exact' && v.labels['outcome'] === 'rejected')?.value ?? 0
    const before = await rejected()
    await record(cache, plan, 200, 'text/event-stream', chatSse(['10', '0 C'], { done: false }))
    // Refused when it ended (synchronously): a refused answer is never offered to the semantic tier.
    assert.equal(await rejected(), before + 1)
    assert.equal(await semantic(cache, ask('At sea level, what is the boiling point of water?')), null)
  })
})

describe('warming and sharing', () => {
  test('a JSONL warm file fills the exact and semantic tiers at boot', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'velox-warm-'))
    const file = path.join(dir, 'warm.jsonl')
    const req = ask('What is the capital of France?').body
    writeFileSync(
      file,
      [
        JSON.stringify({ tenant: 'acme', model: 'llama-3.1-8b', request: req, response: JSON.parse(chatJson('Paris.').toString()) }),
        JSON.stringify({ tenant: 'acme', model: 'llama-3.1-8b', request: { ...req, temperature: 1 }, response: {} }),
        'not json',
      ].join('\n'),
    )
    const { cache: warm } = await makeCache({ ...SEM, warmFile: file })
    try {
      assert.ok(warm.lookup(warm.plan(ask('What is the capital of France?'))))
      await eventually(() => warm.stats().semantic!.entries > 0, { what: 'the warm entry in the semantic index', intervalMs: 10 })
      const hit = await semantic(warm, ask('Can you tell me what the capital of France is?'))
      assert.ok(hit)
    } finally {
      await warm.close()
    }
  })

  test('two instances sharing Redis see each other\'s semantic entries, also after a restart', async () => {
    const redis = await RedisServer.start()
    const a = (await makeCache({ ...SEM, backend: 'redis' }, redis.url, 200)).cache
    const b = (await makeCache({ ...SEM, backend: 'redis' }, redis.url, 200)).cache
    let c: ResponseCache | null = null
    try {
      await store(a, ask('How do I boil an egg?'), 'Simmer it for 9 minutes.')
      await eventually(() => semantic(b, ask("What's the way to boil an egg?")), { what: 'b to see a\'s entry through the stream', timeoutMs: 2_000 })
      // A new instance rebuilds its index from Redis at boot.
      c = (await makeCache({ ...SEM, backend: 'redis' }, redis.url, 200)).cache
      assert.ok(c.stats().semantic!.entries >= 1)
      assert.ok(await semantic(c, ask("What's the way to boil an egg?")))
      assert.equal(await semantic(c, ask("What's the way to boil an egg?", { tenant: 'other' })), null)
    } finally {
      await a.close()
      await b.close()
      await c?.close()
      await redis.stop()
    }
  })
})
