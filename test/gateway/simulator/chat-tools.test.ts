/** The simulator's tool calls, reasoning and /tokenize, as vLLM serves them. */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { post, readEvents } from '../../helpers/gateway.ts'

const TOOLS = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' }, n: { type: 'integer' } }, required: ['q', 'n'] } } }]

describe('simulator: tools, reasoning, tokenize', () => {
  let sim: Simulator
  before(async () => {
    sim = await startSimulator({ tokens: 4 })
  })
  after(() => sim.close())

  const chat = async (body: Record<string, unknown>): Promise<Record<string, any>> =>
    (await (await post(`${sim.url}/v1/chat/completions`, JSON.stringify({ model: 'm', ...body }))).json()) as Record<string, any>

  test('offered tools are called with arguments that satisfy the schema; after a tool result the model answers', async () => {
    const first = await chat({ messages: [{ role: 'user', content: 'find it' }], tools: TOOLS })
    const choice = first.choices[0]
    assert.equal(choice.finish_reason, 'tool_calls')
    assert.equal(choice.message.content, null)
    const call = choice.message.tool_calls[0]
    assert.equal(call.function.name, 'lookup')
    const args = JSON.parse(call.function.arguments)
    assert.equal(typeof args.q, 'string')
    assert.equal(Number.isInteger(args.n), true)
    const second = await chat({ messages: [{ role: 'user', content: 'find it' }, choice.message, { role: 'tool', tool_call_id: call.id, content: 'found' }], tools: TOOLS })
    assert.equal(second.choices[0].finish_reason, 'stop')
    assert.equal(typeof second.choices[0].message.content, 'string')
    const none = await chat({ messages: [{ role: 'user', content: 'find it' }], tools: TOOLS, tool_choice: 'none' })
    assert.equal(none.choices[0].finish_reason, 'stop')
  })

  test('streamed tool calls: id and name first, arguments in pieces, usage on request', async () => {
    const res = await post(`${sim.url}/v1/chat/completions`, JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'find it' }], tools: TOOLS }))
    const { events } = await readEvents(res)
    assert.equal(events.at(-1), 'data: [DONE]')
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)))
    const deltas = chunks.flatMap((c) => c.choices.flatMap((ch: any) => ch.delta.tool_calls ?? []))
    assert.equal(deltas[0].function.name, 'lookup')
    assert.ok(deltas.length >= 3)
    const args = deltas.map((d: any) => d.function.arguments ?? '').join('')
    assert.deepEqual(Object.keys(JSON.parse(args)), ['q', 'n'])
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'tool_calls')
    assert.equal(typeof chunks.at(-1).usage.prompt_tokens, 'number')
  })

  test('enable_thinking: reasoning_content before the answer, streamed first', async () => {
    const body = { messages: [{ role: 'user', content: 'think' }], chat_template_kwargs: { enable_thinking: true } }
    const plain = await chat(body)
    assert.equal(typeof plain.choices[0].message.reasoning_content, 'string')
    assert.equal(plain.choices[0].message.content.split(' ').length, 4)
    const res = await post(`${sim.url}/v1/chat/completions`, JSON.stringify({ model: 'm', stream: true, ...body }))
    const kinds = (await readEvents(res)).events.slice(0, -1).map((e) => Object.keys(JSON.parse(e.slice(6)).choices[0].delta)[0])
    assert.deepEqual(kinds, ['role', 'reasoning_content', 'reasoning_content', 'content', 'content', 'content', 'content', undefined])
  })

  test('/tokenize counts a chat prompt as the chat endpoint does', async () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'How long is this prompt?' }]
    const counted = (await (await post(`${sim.url}/tokenize`, JSON.stringify({ model: 'm', messages }))).json()) as { count: number; tokens: number[] }
    const answered = await chat({ messages })
    assert.equal(counted.count, answered.usage.prompt_tokens)
    assert.equal(counted.tokens.length, counted.count)
    assert.equal((await post(`${sim.url}/tokenize`, JSON.stringify({ messages }))).status, 400)
  })
})
