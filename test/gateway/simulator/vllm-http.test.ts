import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import OpenAI from 'openai'
import { type Simulator, startSimulator } from '../../../gateway/src/simulator/server.ts'
import { eventually } from '../../helpers/eventually.ts'

const SYSTEM = 'You answer questions about the gateway in detail. '.repeat(60)

async function metric(sim: Simulator, name: string): Promise<number> {
  const text = await (await fetch(sim.url + '/metrics')).text()
  const line = text.split('\n').find((l) => l.startsWith(name + '{'))
  assert.ok(line, `${name} is exposed`)
  return Number(line.split(' ').at(-1))
}

const until = (check: () => boolean | Promise<boolean>, what: string) => eventually(check, { what, intervalMs: 5 })

describe('simulator in vLLM mode', () => {
  let sim: Simulator
  let client: OpenAI
  before(async () => {
    sim = await startSimulator({ tokens: 8, models: ['org/llm'], vllm: { maxBatch: 2, stepMs: 2, prefillMsPerToken: 0.02, decodeMsPerSeq: 0.5 } })
    client = new OpenAI({ baseURL: sim.url + '/v1', apiKey: 'unused', maxRetries: 0 })
  })
  after(() => sim.close())

  test('streams engine-paced chunks the official SDK reads, and counts prefix-cache hits', async () => {
    const messages = [{ role: 'system' as const, content: SYSTEM }, { role: 'user' as const, content: 'first' }]
    const stream = await client.chat.completions.create({ model: 'org/llm', messages, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text.split(' ').length, 8)
    assert.equal(usage?.completion_tokens, 8)
    assert.equal(await metric(sim, 'vllm:prefix_cache_hits_total'), 0)
    const queried = await metric(sim, 'vllm:prefix_cache_queries_total')
    assert.ok(queried > 700)
    const answer = await client.chat.completions.create({ model: 'org/llm', messages: [messages[0]!, { role: 'user', content: 'second' }] })
    assert.equal(answer.choices[0]!.message.content!.split(' ').length, 8)
    const hits = await metric(sim, 'vllm:prefix_cache_hits_total')
    assert.ok(hits > 700, `the shared system prompt was a hit (${hits} tokens)`)
    assert.equal(await metric(sim, 'vllm:num_requests_running'), 0)
  })

  test('queues past maxBatch, reports it on /metrics, and frees a cancelled request', async () => {
    // Replies that outlast the test (20,000 tokens, a step of at least 2 ms each): the shared
    // simulator's 8 tokens end within a few steps, so the third request could find the batch free
    // again, or wait too briefly to be seen (it timed out that way on a loaded machine).
    const long = await startSimulator({ tokens: 20_000, models: ['org/llm'], vllm: { maxBatch: 2, stepMs: 2, prefillMsPerToken: 0.02, decodeMsPerSeq: 0.5 } })
    const longClient = new OpenAI({ baseURL: long.url + '/v1', apiKey: 'unused', maxRetries: 0 })
    const controllers = [0, 1, 2].map(() => new AbortController())
    try {
      const pending = controllers.map((c, i) =>
        longClient.chat.completions.create({ model: 'org/llm', messages: [{ role: 'user', content: `q${i}` }], stream: true }, { signal: c.signal }).then(
          async (s) => {
            for await (const _ of s) void _
          },
          () => undefined,
        ),
      )
      await until(async () => (await metric(long, 'vllm:num_requests_waiting')) === 1, 'one request waiting')
      assert.equal(await metric(long, 'vllm:num_requests_running'), 2)
      assert.ok((await metric(long, 'vllm:kv_cache_usage_perc')) > 0)
      for (const c of controllers) c.abort()
      await Promise.all(pending.map((p) => p.catch(() => undefined)))
      await until(async () => (await metric(long, 'vllm:num_requests_running')) + (await metric(long, 'vllm:num_requests_waiting')) === 0, 'the batch to empty')
      assert.equal(long.engine!.kv.used, 0)
    } finally {
      for (const c of controllers) c.abort()
      await long.close()
    }
  })

  test('a prompt larger than the KV cache is refused with 400', async () => {
    const small = await startSimulator({ vllm: { kvBlocks: 4, blockTokens: 16 } })
    try {
      const res = await fetch(small.url + '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(400) }] }) })
      assert.equal(res.status, 400)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'context_length_exceeded')
    } finally {
      await small.close()
    }
  })

  test('outside vLLM mode there is no /metrics', async () => {
    const plain = await startSimulator()
    try {
      assert.equal((await fetch(plain.url + '/metrics')).status, 404)
    } finally {
      await plain.close()
    }
  })
})
