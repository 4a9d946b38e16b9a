/** The response cache in the request path: real gateway, real simulator, real redis-server. */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { hashKey } from '../../gateway/src/auth/authenticator.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, readEvents, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { RedisServer } from './cache/helpers.ts'
import { eventually } from '../helpers/eventually.ts'

const chatCount = (sim: Simulator) => sim.stats().byPath['/v1/chat/completions'] ?? 0
const deterministic = (content: string, extra: Record<string, unknown> = {}) =>
  chatBody({ temperature: 0, messages: [{ role: 'user', content }], ...extra })

describe('exact cache in memory', () => {
  let sim: Simulator
  let gw: TestGateway
  before(async () => {
    sim = await startSimulator({ tokens: 6 })
    gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }],
      auth: { keys: [{ name: 'a', hash: hashKey('key-a'), tenant: 'a' }, { name: 'b', hash: hashKey('key-b'), tenant: 'b' }] },
      routing: { health: { intervalMs: 0 } },
    })
  })
  after(async () => {
    await gw.close()
    await sim.close()
  })
  const A = { authorization: 'Bearer key-a' }
  const B = { authorization: 'Bearer key-b' }

  test('a repeated deterministic request is answered from the cache, in the shape asked for', async () => {
    const first = await post(`${gw.url}/v1/chat/completions`, deterministic('cache me'), A)
    assert.equal(first.headers.get('x-velox-cache'), 'miss')
    const body = (await first.json()) as { choices: Array<{ message: { content: string } }> }
    const before = chatCount(sim)
    const second = await post(`${gw.url}/v1/chat/completions`, deterministic('cache me'), A)
    assert.equal(second.headers.get('x-velox-cache'), 'hit')
    assert.deepEqual(((await second.json()) as typeof body).choices[0]!.message.content, body.choices[0]!.message.content)
    const streamed = await post(`${gw.url}/v1/chat/completions`, deterministic('cache me', { stream: true }), A)
    assert.equal(streamed.headers.get('x-velox-cache'), 'hit')
    assert.match(streamed.headers.get('content-type') ?? '', /text\/event-stream/)
    const { events } = await readEvents(streamed)
    assert.equal(events.at(-1), 'data: [DONE]')
    const text = events.slice(0, -1).map((e) => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '').join('')
    assert.equal(text, body.choices[0]!.message.content)
    assert.equal(chatCount(sim), before, 'a hit reached the upstream')
  })

  test('never across tenants; bypassed for sampling, no-store and the opt-out header', async () => {
    await (await post(`${gw.url}/v1/chat/completions`, deterministic('tenant scoped'), A)).arrayBuffer()
    const other = await post(`${gw.url}/v1/chat/completions`, deterministic('tenant scoped'), B)
    assert.equal(other.headers.get('x-velox-cache'), 'miss')
    await other.arrayBuffer()
    for (const [body, headers, reason] of [
      [chatBody({ messages: [{ role: 'user', content: 'sampled' }] }), A, /temperature/],
      [deterministic('tenant scoped'), { ...A, 'cache-control': 'no-store' }, /no-store/],
      [deterministic('tenant scoped'), { ...A, 'x-velox-cache-bypass': '1' }, /opt-out/],
    ] as const) {
      const res = await post(`${gw.url}/v1/chat/completions`, body, headers)
      assert.equal(res.headers.get('x-velox-cache'), 'bypass')
      assert.match(res.headers.get('x-velox-cache-reason') ?? '', reason)
      await res.arrayBuffer()
    }
  })

  test('failed and broken responses are never stored', async () => {
    sim.setFaults({ status: 500 })
    await (await post(`${gw.url}/v1/chat/completions`, deterministic('fails'), A)).arrayBuffer()
    sim.setFaults({ status: null, resetAfterChunks: 2 })
    await (await post(`${gw.url}/v1/chat/completions`, deterministic('breaks', { stream: true }), A)).arrayBuffer()
    sim.clearFaults()
    for (const content of ['fails', 'breaks']) {
      const res = await post(`${gw.url}/v1/chat/completions`, deterministic(content, { stream: content === 'breaks' }), A)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('x-velox-cache'), 'miss', `${content} was served from the cache`)
      await res.arrayBuffer()
    }
  })
})

describe('shared Redis tier', () => {
  let redis: RedisServer
  let sim: Simulator
  before(async () => {
    redis = await RedisServer.start()
    sim = await startSimulator()
  })
  after(async () => {
    await redis.stop()
    await sim.close()
  })

  test('two gateways share entries; a dead Redis never fails a request', async () => {
    const config = {
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }],
      redis: { url: redis.url, commandTimeoutMs: 100 },
      cache: { backend: 'redis' as const },
      routing: { health: { intervalMs: 0 } },
    }
    const one = await startGateway(config)
    const two = await startGateway(config)
    try {
      const first = await post(`${one.url}/v1/chat/completions`, deterministic('shared'))
      assert.equal(first.headers.get('x-velox-cache'), 'miss')
      await first.arrayBuffer()
      await eventually(async () => {
        const res = await post(`${two.url}/v1/chat/completions`, deterministic('shared'))
        await res.arrayBuffer()
        return res.headers.get('x-velox-cache') === 'hit'
      }, { what: 'the second gateway to see the first one’s entry', timeoutMs: 5_000 })

      await redis.stop()
      for (let i = 0; i < 10; i++) {
        const started = performance.now()
        const r = await post(`${two.url}/v1/chat/completions`, deterministic(`after redis died ${i}`))
        assert.equal(r.status, 200)
        await r.arrayBuffer()
        assert.ok(performance.now() - started < 1000, 'a dead Redis stalled a request')
      }
    } finally {
      await one.close()
      await two.close()
    }
  })
})

/** Polls the gateway's metrics until it holds `n` semantic entries (they are added after the answer ends). */
async function semanticEntries(url: string, n: number): Promise<void> {
  let text = ''
  await eventually(async () => {
    text = await (await fetch(`${url}/metrics`)).text()
    const m = /^velox_cache_entries\{tier="semantic"\} (\d+)/m.exec(text)
    return m !== null && Number(m[1]) >= n
  }, { intervalMs: 10 }).catch(() => {
    throw new Error(`the gateway never held ${n} semantic entries: ${text.split('\n').filter((l) => l.startsWith('velox_cache_') && !l.endsWith(' 0')).join('; ')}`)
  })
}

describe('semantic cache', () => {
  test('a paraphrase is answered from the cache before a slow upstream, which is cancelled; a changed number is not', async () => {
    // Generation takes 1.5 s, as a long answer on a GPU would; the embedding answers at once (its
    // timeout is generous: a loaded test machine must not turn this into a race). The
    // simulator's embeddings are word-based: close wordings score high, as a real model's would.
    const sim = await startSimulator({ ttftMs: 1_500 })
    const embedder = await startSimulator()
    const gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }],
      cache: { semantic: { enabled: true, threshold: 0.8, embedder: { kind: 'openai', url: embedder.url, model: 'embed', timeoutMs: 10_000 } } },
      routing: { health: { intervalMs: 0 } },
    })
    try {
      await (await post(`${gw.url}/v1/chat/completions`, deterministic('What is the capital city of France?'))).arrayBuffer()
      await semanticEntries(gw.url, 1) // the entry's vector is indexed in the background
      const hit = await post(`${gw.url}/v1/chat/completions`, deterministic('what is the capital city of France'))
      const body = (await hit.json()) as { choices: Array<{ message: { content: string } }> }
      // A semantic answer arriving after the upstream's first byte would have been dropped (a
      // miss): the header says the lookup won the race.
      assert.equal(hit.headers.get('x-velox-cache'), 'semantic-hit')
      assert.ok(Number(hit.headers.get('x-velox-cache-similarity')) >= 0.8)
      assert.ok(body.choices[0]!.message.content.length > 0)
      // The upstream request is cancelled, not left to finish.
      await eventually(() => sim.stats().open === 0, { what: 'the upstream request to be cancelled', intervalMs: 10 })

      await (await post(`${gw.url}/v1/chat/completions`, deterministic('Is 17 a prime number?'))).arrayBuffer()
      await semanticEntries(gw.url, 2)
      const swapped = await post(`${gw.url}/v1/chat/completions`, deterministic('Is 21 a prime number?'))
      assert.equal(swapped.headers.get('x-velox-cache'), 'miss')
      await swapped.arrayBuffer()
    } finally {
      await gw.close()
      await sim.close()
      await embedder.close()
    }
  })
})
