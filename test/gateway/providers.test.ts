/**
 * Upstreams by kind, against the simulator's wire formats and raw upstreams that record what
 * they were sent: anthropic (chat translated to Messages, Messages passed through untouched),
 * azure-openai (deployment paths, api-version, api-key) and gemini (OpenAI-compatible paths).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingHttpHeaders } from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { post, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'

interface Seen {
  url: string
  headers: IncomingHttpHeaders
  body: string
}

/** A raw upstream that records requests and answers them from the simulator behind it. */
async function recordingProxy(target: string): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = []
  const up = await startRawUpstream((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      if (req.method === 'POST') seen.push({ url: req.url ?? '', headers: req.headers, body: body.toString() })
      const answer = await fetch(target + (req.url ?? '/'), { method: req.method, headers: { 'content-type': 'application/json' }, body: req.method === 'POST' ? body : undefined })
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' })
      for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk)
      res.end()
    })
  })
  return { url: up.url, seen, close: up.close }
}

describe('kind: anthropic', () => {
  let sim: Simulator
  let rec: Awaited<ReturnType<typeof recordingProxy>>
  let gw: TestGateway
  before(async () => {
    sim = await startSimulator({ tokens: 5 })
    rec = await recordingProxy(sim.url)
    gw = await startGateway(
      {
        upstreams: [{ name: 'claude', kind: 'anthropic', url: rec.url, models: ['claude-haiku-4-5'], apiKeyEnv: 'TEST_ANTHROPIC_KEY', pool: { warm: 0 } }],
        routing: { aliases: { 'haiku-alias': { model: 'claude-haiku-4-5' } } },
      },
      { TEST_ANTHROPIC_KEY: 'sk-ant-upstream' },
    )
  })
  after(async () => {
    await gw.close()
    await rec.close()
    await sim.close()
  })

  test('an OpenAI chat completion is sent as Messages with the upstream key, and answered as chat', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Hi there' }]
    const chat = await client.chat.completions.create({ model: 'claude-haiku-4-5', max_tokens: 50, messages })
    const sent = rec.seen.at(-1)!
    assert.equal(sent.url, '/v1/messages')
    assert.equal(sent.headers['x-api-key'], 'sk-ant-upstream')
    assert.equal(sent.headers['anthropic-version'], '2023-06-01')
    assert.equal(sent.headers.authorization, undefined)
    assert.deepEqual(JSON.parse(sent.body), { model: 'claude-haiku-4-5', system: 'Be brief.', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi there' }] }], max_tokens: 50 })
    const native = (await (await post(`${sim.url}/v1/messages`, sent.body)).json()) as { content: [{ text: string }]; usage: { input_tokens: number } }
    assert.equal(chat.object, 'chat.completion')
    assert.equal(chat.choices[0]!.message.content, native.content[0].text)
    assert.equal(chat.choices[0]!.finish_reason, 'stop')
    assert.equal(chat.usage?.prompt_tokens, native.usage.input_tokens)
    assert.equal(chat.usage?.completion_tokens, 5)
  })

  test('a streamed chat completion arrives as chat chunks translated from Messages events', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    const stream = await client.chat.completions.create({ model: 'haiku-alias', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Stream it' }] })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined = null
    let finish: string | null = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text.split(' ').length, 5)
    assert.equal(finish, 'stop')
    assert.equal(usage?.completion_tokens, 5)
    // The alias resolved for the upstream; the client's answer names what it asked for.
    assert.equal(JSON.parse(rec.seen.at(-1)!.body).model, 'claude-haiku-4-5')
  })

  test('tool calls round-trip through Messages', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } }]
    const first = await client.chat.completions.create({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'Find' }], tools })
    const call = first.choices[0]!.message.tool_calls?.[0]
    assert.equal(first.choices[0]!.finish_reason, 'tool_calls')
    assert.ok(call !== undefined && call.type === 'function')
    assert.equal(typeof JSON.parse(call.function.arguments).q, 'string')
    const second = await client.chat.completions.create({ model: 'claude-haiku-4-5', tools, messages: [{ role: 'user', content: 'Find' }, first.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: 'found it' }] })
    assert.equal(second.choices[0]!.finish_reason, 'stop')
    const sent = JSON.parse(rec.seen.at(-1)!.body) as { messages: { role: string; content: { type: string }[] }[] }
    assert.deepEqual(sent.messages.map((m) => `${m.role}:${m.content.map((c) => c.type).join('+')}`), ['user:text', 'assistant:tool_use', 'user:tool_result'])
  })

  test('a Messages request goes through untouched and its answer comes back untouched', async () => {
    const client = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client', maxRetries: 0 })
    const body = { model: 'claude-haiku-4-5', max_tokens: 20, messages: [{ role: 'user' as const, content: 'Native please' }], metadata: { user_id: 'u1' } }
    const msg = await client.messages.create(body)
    const sent = rec.seen.at(-1)!
    assert.equal(sent.url, '/v1/messages')
    assert.deepEqual(JSON.parse(sent.body), body)
    assert.equal(sent.headers['x-api-key'], 'sk-ant-upstream')
    const direct = (await (await post(`${sim.url}/v1/messages`, sent.body)).json()) as { content: unknown; usage: unknown }
    assert.deepEqual(msg.content, direct.content)
    assert.deepEqual(msg.usage, direct.usage)
    const stream = await client.messages.stream({ ...body, max_tokens: 3 }).finalMessage()
    assert.equal(stream.stop_reason, 'max_tokens')
    const counted = await client.messages.countTokens({ model: 'claude-haiku-4-5', messages: body.messages })
    assert.equal(rec.seen.at(-1)!.url, '/v1/messages/count_tokens')
    assert.equal(typeof counted.input_tokens, 'number')
  })

  test('an Anthropic 529 fails over like a 5xx, across kinds; with no retry left it reaches the client in its shape', async () => {
    const mixed = await startGateway(
      {
        upstreams: [
          { name: 'claude', kind: 'anthropic', url: rec.url, models: ['claude-haiku-4-5'], pool: { warm: 0 } },
          { name: 'vllm', url: sim.url, models: ['claude-haiku-4-5'], priority: 1, pool: { warm: 0 } },
        ],
      },
    )
    const client = new OpenAI({ baseURL: `${mixed.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    sim.setFaults({ status: 529, statusCount: 1 })
    try {
      const ok = await client.chat.completions.create({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'retry me' }] }).withResponse()
      assert.equal(ok.data.object, 'chat.completion')
      assert.equal(ok.response.headers.get('x-velox-upstream'), 'vllm')
    } finally {
      sim.clearFaults()
      await mixed.close()
    }
    const single = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    sim.setFaults({ status: 529, statusCount: 10 })
    try {
      await assert.rejects(single.chat.completions.create({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'fail me' }] }), (err: unknown) => {
        assert.ok(err instanceof OpenAI.APIError)
        assert.equal(err.status, 529)
        assert.equal((err.error as { type?: string }).type, 'overloaded_error')
        return true
      })
      const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client', maxRetries: 0 })
      await assert.rejects(anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
        assert.ok(err instanceof Anthropic.InternalServerError)
        assert.equal(err.status, 529)
        assert.equal((err.error as { error?: { type?: string } }).error?.type, 'overloaded_error')
        return true
      })
    } finally {
      sim.clearFaults()
    }
  })

  test('endpoints Messages cannot serve are refused in the client shape', async () => {
    const res = await post(`${gw.url}/v1/embeddings`, JSON.stringify({ model: 'claude-haiku-4-5', input: 'x' }))
    assert.equal(res.status, 400)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_UNSUPPORTED_CONTENT')
  })
})

describe('kind: azure-openai and gemini', () => {
  let sim: Simulator
  let rec: Awaited<ReturnType<typeof recordingProxy>>
  let gw: TestGateway
  before(async () => {
    sim = await startSimulator({ tokens: 4 })
    rec = await recordingProxy(sim.url)
    gw = await startGateway(
      {
        upstreams: [
          { name: 'azure', kind: 'azure-openai', url: rec.url, models: ['gpt-4o', 'text-embedding-3-small'], apiKeyEnv: 'TEST_AZURE_KEY', apiVersion: '2025-01-01-preview', deployments: { 'gpt-4o': 'prod-4o' }, pool: { warm: 0 } },
          { name: 'gemini', kind: 'gemini', url: `${rec.url}/v1beta/openai`, models: ['gemini-2.5-flash'], apiKeyEnv: 'TEST_GEMINI_KEY', pool: { warm: 0 } },
        ],
      },
      { TEST_AZURE_KEY: 'az-key', TEST_GEMINI_KEY: 'gm-key' },
    )
  })
  after(async () => {
    await gw.close()
    await rec.close()
    await sim.close()
  })

  test('azure: the deployment path, api-version and api-key; the answer as OpenAI sent it', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    const chat = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(chat.object, 'chat.completion')
    let sent = rec.seen.at(-1)!
    assert.equal(sent.url, '/openai/deployments/prod-4o/chat/completions?api-version=2025-01-01-preview')
    assert.equal(sent.headers['api-key'], 'az-key')
    assert.equal(sent.headers.authorization, undefined)
    const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' })
    assert.equal(emb.data.length, 1)
    sent = rec.seen.at(-1)!
    assert.equal(sent.url, '/openai/deployments/text-embedding-3-small/embeddings?api-version=2025-01-01-preview')
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    assert.equal(text, chat.choices[0]!.message.content)
  })

  test('gemini: OpenAI paths under its OpenAI-compatible base, Bearer key', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client', maxRetries: 0 })
    const chat = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(chat.object, 'chat.completion')
    const sent = rec.seen.at(-1)!
    assert.equal(sent.url, '/v1beta/openai/chat/completions')
    assert.equal(sent.headers.authorization, 'Bearer gm-key')
  })

  test('a Messages client reaches an azure upstream through the chat translation', async () => {
    const client = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client', maxRetries: 0 })
    const msg = await client.messages.create({ model: 'gpt-4o', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(msg.type, 'message')
    assert.equal(rec.seen.at(-1)!.url, '/openai/deployments/prod-4o/chat/completions?api-version=2025-01-01-preview')
  })
})
