/**
 * The Anthropic Messages API at the gateway, driven by the official Anthropic SDK and the Vercel
 * AI SDK's Anthropic provider, in front of the simulator (an OpenAI-compatible upstream).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import Anthropic from '@anthropic-ai/sdk'
import { createAnthropic } from '@ai-sdk/anthropic'
import { generateText, jsonSchema, streamText, tool } from 'ai'
import { hashKey } from '../../../gateway/src/auth/authenticator.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { post, readEvents, startGateway, type TestGateway } from '../../helpers/gateway.ts'
import { metricsText } from '../../../gateway/src/server.ts'

// The AI SDK warns on stderr about unknown model ids; the simulator's are unknown by design.
;(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false

const MODEL = 'velox-sim-1'
const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] },
}

describe('Anthropic Messages ingress, official SDKs', () => {
  let sim: Simulator
  let gw: TestGateway
  let client: Anthropic

  before(async () => {
    sim = await startSimulator({ tokens: 6 })
    gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: [MODEL], pool: { warm: 1 } }],
      routing: { aliases: { 'claude-alias': { model: MODEL } } },
      auth: { keys: [{ name: 'k1', tenant: 't1', hash: hashKey('sk-good') }] },
      cache: { enabled: true },
    })
    client = new Anthropic({ baseURL: gw.url, apiKey: 'sk-good', maxRetries: 0 })
  })
  after(async () => {
    await gw.close()
    await sim.close()
  })

  /** What the simulator answers the same conversation asked as a chat completion. */
  async function chatAnswer(messages: unknown[], extra: Record<string, unknown> = {}): Promise<{ text: string; prompt: number }> {
    const res = await post(`${sim.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, messages, ...extra }))
    const body = (await res.json()) as { choices: [{ message: { content: string } }]; usage: { prompt_tokens: number } }
    return { text: body.choices[0].message.content, prompt: body.usage.prompt_tokens }
  }

  test('messages.create: the translated answer, usage and stop reason', async () => {
    const msg = await client.messages.create({ model: MODEL, max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello there' }] })
    const expected = await chatAnswer([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }], { max_tokens: 100 })
    assert.equal(msg.type, 'message')
    assert.equal(msg.role, 'assistant')
    assert.equal(msg.model, MODEL)
    assert.match(msg.id, /^msg_/)
    assert.deepEqual(msg.content, [{ type: 'text', text: expected.text }])
    assert.equal(msg.stop_reason, 'end_turn')
    assert.equal(msg.usage.input_tokens, expected.prompt)
    assert.equal(msg.usage.output_tokens, 6)
  })

  test('an alias answers with the name the client asked for; max_tokens ends as max_tokens', async () => {
    const msg = await client.messages.create({ model: 'claude-alias', max_tokens: 2, messages: [{ role: 'user', content: 'Hi' }] })
    assert.equal(msg.model, 'claude-alias')
    assert.equal(msg.stop_reason, 'max_tokens')
    assert.equal(msg.usage.output_tokens, 2)
  })

  test('messages.stream: the exact event grammar, token by token, same text as non-stream', async () => {
    sim.setFaults({ interTokenMs: 15 })
    try {
      const params = { model: MODEL, max_tokens: 100, messages: [{ role: 'user' as const, content: 'Stream please' }] }
      const stream = client.messages.stream(params)
      const types: string[] = []
      const arrivals: number[] = []
      stream.on('streamEvent', (event) => {
        types.push(event.type === 'content_block_delta' ? `${event.type}:${event.delta.type}` : event.type)
        if (event.type === 'content_block_delta') arrivals.push(performance.now())
      })
      const final = await stream.finalMessage()
      const plain = await client.messages.create(params)
      assert.deepEqual(types, [
        'message_start',
        'content_block_start',
        ...Array(6).fill('content_block_delta:text_delta'),
        'content_block_stop',
        'message_delta',
        'message_stop',
      ])
      assert.deepEqual(final.content, plain.content)
      assert.equal(final.stop_reason, 'end_turn')
      assert.equal(final.usage.output_tokens, 6)
      assert.equal(final.usage.input_tokens, plain.usage.input_tokens)
      // Token by token: deltas arrive spread over the inter-token gaps, not in one burst.
      assert.ok(arrivals.at(-1)! - arrivals[0]! >= 4 * 10, `deltas arrived within ${arrivals.at(-1)! - arrivals[0]!} ms`)
    } finally {
      sim.clearFaults()
    }
  })

  test('the raw stream carries a ping after message_start and SSE headers', async () => {
    const res = await post(`${gw.url}/v1/messages`, JSON.stringify({ model: MODEL, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'x' }] }), { 'x-api-key': 'sk-good', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'fine-grained-tool-streaming-2025-05-14' })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    assert.equal(res.headers.get('x-accel-buffering'), 'no')
    const { events } = await readEvents(res)
    assert.deepEqual(events.slice(0, 2).map((e) => e.split('\n')[0]), ['event: message_start', 'event: ping'])
    assert.equal(events.at(-1), 'event: message_stop\ndata: {"type":"message_stop"}')
  })

  test('tools: tool_use out, tool_result back in, and tool_choice', async () => {
    const first = await client.messages.create({ model: MODEL, max_tokens: 100, tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'Weather in Paris?' }] })
    assert.equal(first.stop_reason, 'tool_use')
    const use = first.content.find((b) => b.type === 'tool_use')
    assert.ok(use !== undefined && use.type === 'tool_use')
    assert.equal(use.name, 'get_weather')
    assert.equal(typeof (use.input as { city?: unknown }).city, 'string')

    const second = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: [WEATHER_TOOL],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C and sunny' }] },
      ],
    })
    assert.equal(second.stop_reason, 'end_turn')
    assert.equal(second.content[0]?.type, 'text')

    const none = await client.messages.create({ model: MODEL, max_tokens: 100, tools: [WEATHER_TOOL], tool_choice: { type: 'none' }, messages: [{ role: 'user', content: 'Weather?' }] })
    assert.equal(none.stop_reason, 'end_turn')
  })

  test('tools, streamed: input_json_delta pieces assemble into the tool input', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 100, tools: [WEATHER_TOOL], tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'Weather in Rome?' }] })
    const deltas: string[] = []
    stream.on('streamEvent', (event) => {
      if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta') deltas.push(event.delta.partial_json)
    })
    const final = await stream.finalMessage()
    assert.equal(final.stop_reason, 'tool_use')
    const use = final.content.find((b) => b.type === 'tool_use')
    assert.ok(use !== undefined && use.type === 'tool_use')
    assert.ok(deltas.length >= 2, 'arguments streamed in pieces')
    assert.deepEqual(use.input, JSON.parse(deltas.join('')))
  })

  test('thinking: reasoning comes back as thinking blocks, streamed as thinking_delta', async () => {
    const params = { model: MODEL, max_tokens: 100, thinking: { type: 'enabled' as const, budget_tokens: 1024 }, messages: [{ role: 'user' as const, content: 'Think first' }] }
    const msg = await client.messages.create(params)
    assert.deepEqual(msg.content.map((b) => b.type), ['thinking', 'text'])
    const stream = client.messages.stream(params)
    const kinds = new Set<string>()
    stream.on('streamEvent', (e) => {
      if (e.type === 'content_block_delta') kinds.add(e.delta.type)
    })
    const final = await stream.finalMessage()
    assert.deepEqual([...kinds].sort(), ['text_delta', 'thinking_delta'])
    assert.deepEqual(final.content.map((b) => (b.type === 'thinking' ? b.thinking : b.type === 'text' ? b.text : '')), msg.content.map((b) => (b.type === 'thinking' ? b.thinking : b.type === 'text' ? b.text : '')))
  })

  test('count_tokens: the upstream tokenizer counts the translated prompt', async () => {
    const messages = [{ role: 'user' as const, content: 'How many tokens is this?' }]
    const counted = await client.messages.countTokens({ model: MODEL, system: 'Be brief.', messages })
    const expected = await chatAnswer([{ role: 'system', content: 'Be brief.' }, ...messages])
    assert.equal(counted.input_tokens, expected.prompt)
  })

  test('the cache answers a repeated Messages request, translated', async () => {
    // Sampled answers are cached only at temperature 0 (Anthropic's default is 1, as OpenAI's).
    const params = { model: MODEL, max_tokens: 50, temperature: 0, messages: [{ role: 'user' as const, content: 'cache me' }] }
    const a = await client.messages.create(params).withResponse()
    const b = await client.messages.create(params).withResponse()
    assert.equal(a.response.headers.get('x-velox-cache'), 'miss')
    assert.equal(b.response.headers.get('x-velox-cache'), 'hit')
    assert.deepEqual(b.data.content, a.data.content)
    // A streamed request for the same conversation replays the stored answer as Anthropic events.
    const s = await client.messages.stream(params).finalMessage()
    assert.deepEqual(s.content, a.data.content)
  })

  test('errors are Anthropic-shaped, and the SDK raises its typed errors', async () => {
    await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
      assert.ok(err instanceof Anthropic.NotFoundError)
      assert.equal(err.status, 404)
      assert.equal((err.error as { error: { type: string } }).error.type, 'not_found_error')
      return true
    })
    const bad = new Anthropic({ baseURL: gw.url, apiKey: 'sk-wrong', maxRetries: 0 })
    await assert.rejects(bad.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), Anthropic.AuthenticationError)
    // Bearer works as well as x-api-key.
    const bearer = new Anthropic({ baseURL: gw.url, apiKey: null, authToken: 'sk-good', maxRetries: 0 })
    assert.equal((await bearer.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })).type, 'message')
    await assert.rejects(
      client.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' } }] }] }),
      (err: unknown) => err instanceof Anthropic.BadRequestError && /GW_ERR_UNSUPPORTED_CONTENT/.test(JSON.stringify(err.error)),
    )
    const raw = await post(`${gw.url}/v1/messages`, '{"model":"x"', { 'x-api-key': 'sk-good' })
    assert.equal(raw.status, 400)
    assert.deepEqual(Object.keys((await raw.json()) as object), ['type', 'error'])
  })

  test('an upstream 429 reaches the SDK as a RateLimitError; a mid-stream failure as an error event', async () => {
    sim.setFaults({ status: 429, statusCount: 10 })
    try {
      await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'limited' }] }), Anthropic.RateLimitError)
    } finally {
      sim.clearFaults()
    }
    sim.setFaults({ resetAfterChunks: 3, interTokenMs: 1 })
    try {
      const stream = client.messages.stream({ model: MODEL, max_tokens: 50, messages: [{ role: 'user', content: 'break mid-stream' }] })
      await assert.rejects(stream.finalMessage(), (err: unknown) => {
        assert.ok(err instanceof Anthropic.APIError)
        assert.match(err.message, /api_error|mid-response/)
        return true
      })
    } finally {
      sim.clearFaults()
    }
  })

  test('metrics count Messages requests under their own route', async () => {
    // With API keys on, /metrics lives on the admin listener only; read the same text directly.
    const text = await metricsText(gw.app.velox.metrics)
    assert.match(text, /velox_requests_total\{route="messages",model="velox-sim-1",upstream="sim",status="200"\} \d+/)
    assert.match(text, /velox_requests_total\{route="messages.count_tokens",model="velox-sim-1",upstream="sim",status="200"\} 1/)
  })

  test('Vercel AI SDK, Anthropic provider: generateText, streamText, tools', async () => {
    const anthropic = createAnthropic({ baseURL: `${gw.url}/v1`, apiKey: 'sk-good' })
    const model = anthropic(MODEL)
    const text = await generateText({ model, prompt: 'Hello from the AI SDK', maxRetries: 0, maxOutputTokens: 100 })
    const expected = await chatAnswer([{ role: 'user', content: [{ type: 'text', text: 'Hello from the AI SDK' }] }], { max_tokens: 100 })
    assert.equal(text.text, expected.text)
    assert.equal(text.finishReason, 'stop')

    const streamed = streamText({ model, prompt: 'Hello from the AI SDK', maxRetries: 0, maxOutputTokens: 100 })
    let joined = ''
    for await (const piece of streamed.textStream) joined += piece
    assert.equal(joined, text.text)
    assert.equal((await streamed.usage).outputTokens, 6)

    const withTool = await generateText({
      model,
      prompt: 'Weather in Oslo?',
      maxRetries: 0,
      maxOutputTokens: 100,
      tools: { get_weather: tool({ description: 'weather', inputSchema: jsonSchema<{ city: string }>(WEATHER_TOOL.input_schema) }) },
    })
    assert.equal(withTool.finishReason, 'tool-calls')
    assert.equal(withTool.toolCalls[0]?.toolName, 'get_weather')
    assert.equal(typeof (withTool.toolCalls[0]?.input as { city?: unknown }).city, 'string')
  })
})
