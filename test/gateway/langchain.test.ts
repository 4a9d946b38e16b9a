/**
 * LangChain as its users run it: `ChatOpenAI` (@langchain/openai) on the chat completions and
 * Responses APIs, and `ChatAnthropic` (@langchain/anthropic) on the Messages API, pointed at the
 * gateway in front of the simulator. Non-stream, stream, tool calls and errors, each compared with
 * what the simulator itself answers.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ChatAnthropic } from '@langchain/anthropic'
import { ChatOpenAI } from '@langchain/openai'
import { AIMessageChunk, HumanMessage, SystemMessage, ToolMessage, type AIMessage } from '@langchain/core/messages'
import { tool } from '@langchain/core/tools'
import { hashKey } from '../../gateway/src/auth/authenticator.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { post, startGateway, type TestGateway } from '../helpers/gateway.ts'

const MODEL = 'velox-sim-1'
const KEY = 'sk-langchain'

/** A tool as LangChain users define one: a JSON schema, and a function LangChain never calls here. */
const weather = tool(async ({ city }: { city: string }) => `12 C in ${city}`, {
  name: 'get_weather',
  description: 'The weather in a city',
  schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
})

describe('LangChain through the gateway', () => {
  let sim: Simulator
  let gw: TestGateway

  before(async () => {
    sim = await startSimulator({ tokens: 6, models: [MODEL] })
    gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: [MODEL], pool: { warm: 1 } }],
      auth: { keys: [{ name: 'lc', tenant: 't1', hash: hashKey(KEY) }] },
    })
  })
  after(async () => {
    await gw.close()
    await sim.close()
  })

  const openai = (extra: Record<string, unknown> = {}): ChatOpenAI => new ChatOpenAI({ model: MODEL, apiKey: KEY, configuration: { baseURL: `${gw.url}/v1` }, maxRetries: 0, ...extra })
  const anthropic = (extra: Record<string, unknown> = {}): ChatAnthropic => new ChatAnthropic({ model: MODEL, apiKey: KEY, anthropicApiUrl: gw.url, maxRetries: 0, maxTokens: 100, ...extra })

  /** The simulator's own answer to the conversation, asked directly as a chat completion. */
  async function direct(messages: unknown[], extra: Record<string, unknown> = {}): Promise<string> {
    const res = await post(`${sim.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, messages, ...extra }))
    return ((await res.json()) as { choices: [{ message: { content: string } }] }).choices[0].message.content
  }

  async function collect(stream: AsyncIterable<AIMessageChunk>): Promise<{ full: AIMessageChunk; chunks: number }> {
    let full: AIMessageChunk | null = null
    let chunks = 0
    for await (const chunk of stream) {
      chunks++
      full = full === null ? chunk : full.concat(chunk)
    }
    assert.ok(full !== null, 'the stream produced no chunk')
    return { full, chunks }
  }

  test('ChatOpenAI: invoke and stream give the simulator\'s answer, with usage; streams arrive token by token', async () => {
    const model = openai()
    const messages = [new SystemMessage('Be brief.'), new HumanMessage('Hello there')]
    const expected = await direct([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }])
    const answer = await model.invoke(messages)
    assert.equal(answer.content, expected)
    assert.equal(answer.usage_metadata?.output_tokens, 6)
    assert.equal(answer.response_metadata.finish_reason, 'stop')
    const { full, chunks } = await collect(await model.stream(messages))
    assert.equal(full.content, expected)
    assert.ok(chunks >= 6, `only ${chunks} chunks`)
    assert.equal(full.usage_metadata?.output_tokens, 6)
  })

  test('ChatOpenAI: bound tools, non-stream and stream, then the answer to the tool result', async () => {
    const model = openai().bindTools([weather])
    const ask = [new HumanMessage('Weather in Oslo?')]
    const call = await model.invoke(ask)
    assert.equal(call.tool_calls?.length, 1)
    const tc = call.tool_calls![0]!
    assert.equal(tc.name, 'get_weather')
    assert.equal(typeof tc.args, 'object')
    const { full } = await collect(await model.stream(ask))
    assert.equal(full.tool_calls?.[0]?.name, 'get_weather')
    assert.deepEqual(full.tool_calls?.[0]?.args, tc.args)
    const after = await model.invoke([...ask, call, new ToolMessage({ tool_call_id: tc.id!, content: '12 C' })])
    assert.equal(after.tool_calls?.length ?? 0, 0)
    assert.ok(typeof after.content === 'string' && after.content.length > 0)
  })

  test('ChatOpenAI on the Responses API: invoke and stream', async () => {
    const model = openai({ useResponsesApi: true })
    const answer = (await model.invoke('Hello there')) as AIMessage
    const text = typeof answer.content === 'string' ? answer.content : answer.content.map((c) => ('text' in c ? c.text : '')).join('')
    assert.equal(text.split(' ').length, 6)
    const { full } = await collect(await model.stream('Hello there'))
    const streamed = typeof full.content === 'string' ? full.content : full.content.map((c) => ('text' in c ? c.text : '')).join('')
    assert.equal(streamed, text)
  })

  test('ChatAnthropic: invoke and stream give the same answer as chat, with usage and stop reason', async () => {
    const model = anthropic()
    const expected = await direct([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }], { max_tokens: 100 })
    const answer = await model.invoke([new SystemMessage('Be brief.'), new HumanMessage('Hello there')])
    assert.equal(answer.content, expected)
    assert.equal(answer.usage_metadata?.output_tokens, 6)
    assert.equal(answer.response_metadata.stop_reason, 'end_turn')
    const { full, chunks } = await collect(await model.stream([new SystemMessage('Be brief.'), new HumanMessage('Hello there')]))
    assert.equal(full.content, expected)
    assert.ok(chunks >= 6, `only ${chunks} chunks`)
    assert.equal(full.usage_metadata?.output_tokens, 6)
  })

  test('ChatAnthropic: bound tools (tool_use blocks), stream and not, then the tool result', async () => {
    const model = anthropic().bindTools([weather])
    const ask = [new HumanMessage('Weather in Oslo?')]
    const call = await model.invoke(ask)
    assert.equal(call.tool_calls?.[0]?.name, 'get_weather')
    assert.equal(call.response_metadata.stop_reason, 'tool_use')
    const { full } = await collect(await model.stream(ask))
    assert.equal(full.tool_calls?.[0]?.name, 'get_weather')
    assert.deepEqual(full.tool_calls?.[0]?.args, call.tool_calls![0]!.args)
    const after = await model.invoke([...ask, call, new ToolMessage({ tool_call_id: call.tool_calls![0]!.id!, content: '12 C' })])
    assert.equal(after.tool_calls?.length ?? 0, 0)
    assert.equal(after.response_metadata.stop_reason, 'end_turn')
  })

  test('errors surface as the providers\' typed errors: bad key, unknown model, rate limit, a stream that breaks', async () => {
    // LangChain wraps the SDK errors but keeps their status (and, for OpenAI, the error body).
    const status = (e: unknown): number | undefined => (e as { status?: number }).status
    await assert.rejects(openai({ apiKey: 'sk-wrong' }).invoke('hi'), (e: unknown) => status(e) === 401)
    await assert.rejects(anthropic({ apiKey: 'sk-wrong' }).invoke('hi'), (e: unknown) => status(e) === 401 && /authentication_error/.test(String((e as Error).message) + JSON.stringify(e)))
    await assert.rejects(openai({ model: 'no-such-model' }).invoke('hi'), (e: unknown) => status(e) === 404 && /GW_ERR_MODEL_NOT_FOUND|does not exist/.test(String((e as Error).message)))
    await assert.rejects(anthropic({ model: 'no-such-model' }).invoke('hi'), (e: unknown) => status(e) === 404)
    sim.setFaults({ status: 429, retryAfterSeconds: 1 })
    try {
      await assert.rejects(openai().invoke('hi'), (e: unknown) => status(e) === 429)
      await assert.rejects(anthropic().invoke('hi'), (e: unknown) => status(e) === 429 && /rate_limit_error/.test(String((e as Error).message) + JSON.stringify(e)))
    } finally {
      sim.clearFaults()
    }
    sim.setFaults({ resetAfterChunks: 3, interTokenMs: 1 })
    try {
      for (const model of [openai(), anthropic()]) {
        let got = ''
        await assert.rejects(async () => {
          for await (const chunk of await model.stream('hi')) got += typeof chunk.content === 'string' ? chunk.content : ''
        }, /GW_ERR_UPSTREAM_STREAM_BROKEN|upstream connection failed/)
        assert.ok(got.length > 0, 'tokens before the break reached the caller')
      }
    } finally {
      sim.clearFaults()
    }
  })
})
