import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { CachePlan, LookupPlan, ResponseCache } from '../../../gateway/src/cache/index.ts'
import { canonicalBody } from '../../../gateway/src/cache/canonical.ts'
import { chatRequest, makeCache } from './helpers.ts'

let cache: ResponseCache

before(async () => {
  ;({ cache } = await makeCache({ routes: [{ match: { model: 'nocache-*' }, enabled: false }, { match: { model: 'hot' }, cacheNonZeroTemperature: true }] }))
})
after(async () => cache.close())

function keyOf(over: Parameters<typeof chatRequest>[0] = {}): string {
  const p = cache.plan(chatRequest(over))
  assert.equal(p.mode, 'lookup', `expected a lookup plan, got ${JSON.stringify(p)}`)
  return (p as LookupPlan).key
}

const base = chatRequest().body
const msgs = base.messages as { role: string; content: string }[]

describe('exact key', () => {
  test('is stable and ignores key order, stream flags and bookkeeping fields', () => {
    const a = keyOf()
    const reordered = Object.fromEntries(Object.entries(base).reverse())
    assert.equal(keyOf({ body: reordered }), a)
    assert.equal(keyOf({ body: { ...base, stream: true, stream_options: { include_usage: true } } }), a)
    assert.equal(keyOf({ body: { ...base, user: 'someone', metadata: { a: 1 } } }), a)
    assert.equal(keyOf({ body: { ...base, temperature: 0.0 } }), a)
  })

  test('changes with everything that changes the output', () => {
    const a = keyOf()
    const variants: [string, Parameters<typeof chatRequest>[0]][] = [
      ['tenant', { tenant: 'other' }],
      ['resolved model', { model: 'llama-3.1-70b' }],
      ['endpoint', { endpoint: 'completions' }],
      ['system prompt', { body: { ...base, messages: [{ role: 'system', content: 'You are verbose.' }, msgs[1]] } }],
      ['earlier turns', { body: { ...base, messages: [msgs[0], { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, msgs[1]] } }],
      ['max_tokens', { body: { ...base, max_tokens: 65 } }],
      ['top_p', { body: { ...base, top_p: 0.5 } }],
      ['seed', { body: { ...base, seed: 1 } }],
      ['tools', { body: { ...base, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] } }],
      ['response_format', { body: { ...base, response_format: { type: 'json_object' } } }],
      ['unknown field', { body: { ...base, guided_regex: 'a+' } }],
      ['last message', { body: { ...base, messages: [msgs[0], { role: 'user', content: 'What is the capital of Spain?' }] } }],
    ]
    const seen = new Set([a])
    for (const [name, over] of variants) {
      const k = keyOf(over)
      assert.ok(!seen.has(k), `${name} must change the key`)
      seen.add(k)
    }
  })

  test('different temperature values give different keys when sampling is cacheable', () => {
    const k1 = keyOf({ model: 'hot', body: { ...base, temperature: 0.7 } })
    const k2 = keyOf({ model: 'hot', body: { ...base, temperature: 0.8 } })
    assert.notEqual(k1, k2)
  })

  test('canonical body has sorted keys and the resolved model', () => {
    assert.equal(canonicalBody({ b: 1, model: 'alias', a: { d: 1, c: [2, { f: 1, e: 2 }] }, stream: true }, 'real'), '{"model":"real","a":{"c":[2,{"e":2,"f":1}],"d":1},"b":1}')
  })

  // How fast planning is, is measured by `npm run bench -- --only cache-components` (plan and
  // plan + exact hit); a timed assertion here would only measure how busy the machine is.
  test('a typical 1-2 KB chat body plans to one stable key, whatever else the request carries', () => {
    const body = {
      ...base,
      messages: Array.from({ length: 6 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `Turn ${i}: ` + 'lorem ipsum dolor sit amet '.repeat(9) })),
    }
    assert.ok(JSON.stringify(body).length > 1000)
    const keyOf = (plan: CachePlan): string => {
      assert.equal(plan.mode, 'lookup')
      return (plan as LookupPlan).key
    }
    const first = keyOf(cache.plan(chatRequest({ body })))
    for (let i = 0; i < 100; i++) assert.equal(keyOf(cache.plan(chatRequest({ body: { ...body, stream: i % 2 === 0 } }))), first)
    const other = { ...body, messages: [...body.messages.slice(0, 5), { role: 'user', content: 'Turn 5: something else' }] }
    assert.notEqual(keyOf(cache.plan(chatRequest({ body: other }))), first, 'control: another conversation has another key')
  })
})

describe('bypass rules', () => {
  const reason = (over: Parameters<typeof chatRequest>[0]) => {
    const p = cache.plan(chatRequest(over))
    return p.mode === 'bypass' ? p.reason : 'lookup'
  }

  test('temperature above 0 or absent bypasses unless configured', () => {
    assert.equal(reason({ body: { ...base, temperature: 0.7 } }), 'temperature')
    const { temperature: _t, ...noTemp } = base
    assert.equal(reason({ body: noTemp }), 'temperature')
    assert.equal(reason({ model: 'hot', body: { ...base, temperature: 0.7 } }), 'lookup')
  })

  test('n > 1, headers and opt-out bypass', () => {
    assert.equal(reason({ body: { ...base, n: 2 } }), 'n')
    assert.equal(reason({ body: { ...base, n: 1 } }), 'lookup')
    assert.equal(reason({ headers: { 'cache-control': 'no-store' } }), 'no-store')
    assert.equal(reason({ headers: { 'cache-control': 'max-age=0, no-cache' } }), 'no-cache')
    assert.equal(reason({ headers: { 'x-velox-cache-bypass': '1' } }), 'opt-out')
    assert.equal(reason({ headers: { 'x-velox-cache-bypass': 'false' } }), 'lookup')
    assert.equal(reason({ model: 'nocache-model' }), 'disabled')
  })

  test('no-cache skips the read but refreshes the entry', () => {
    const p = cache.plan(chatRequest({ headers: { 'cache-control': 'no-cache' } }))
    assert.equal(p.mode, 'bypass')
    assert.ok(p.mode === 'bypass' && p.refresh !== null && p.refresh.key === keyOf())
    assert.deepEqual(cache.statusHeaders(p), { 'x-velox-cache': 'bypass', 'x-velox-cache-reason': 'no-cache' })
  })

  test('embeddings are deterministic and never bypass on temperature', () => {
    assert.equal(reason({ endpoint: 'embeddings', body: { model: 'e5', input: 'hello' } }), 'lookup')
  })
})

describe('scope', () => {
  test('user scope separates end users and refuses anonymous requests', async () => {
    const { cache: userCache } = await makeCache({ scope: 'user' })
    try {
      const a = userCache.plan(chatRequest({ endUser: 'alice' })) as LookupPlan
      const b = userCache.plan(chatRequest({ endUser: 'bob' })) as LookupPlan
      assert.notEqual(a.key, b.key)
      const anon = userCache.plan(chatRequest({ endUser: null }))
      assert.equal(anon.mode === 'bypass' && anon.reason, 'no-end-user')
    } finally {
      await userCache.close()
    }
  })

  test('global scope shares between tenants only when configured', async () => {
    const { cache: g } = await makeCache({ scope: 'global' })
    try {
      assert.equal((g.plan(chatRequest({ tenant: 'a' })) as LookupPlan).key, (g.plan(chatRequest({ tenant: 'b' })) as LookupPlan).key)
    } finally {
      await g.close()
    }
  })
})
