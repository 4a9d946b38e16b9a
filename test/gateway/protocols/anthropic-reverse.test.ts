/** Golden fixtures for Anthropic-native upstreams: OpenAI chat -> Messages and the answer back. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { chatToMessagesRequest, messageToChat, MessagesToChatStream } from '../../../gateway/src/protocols/anthropic/from-chat.ts'
import { ChatToMessagesStream } from '../../../gateway/src/protocols/anthropic/stream.ts'
import { SseReader } from '../../../gateway/src/protocols/sse.ts'
import { GatewayError } from '../../../gateway/src/errors.ts'

const dir = new URL('../../fixtures/protocols/anthropic/', import.meta.url)
const fixture = (name: string): Record<string, any> => JSON.parse(readFileSync(new URL(name, dir), 'utf8'))

test('request golden: OpenAI chat -> Messages', () => {
  const f = fixture('reverse-request.json')
  assert.deepEqual(chatToMessagesRequest(f.openai, 'claude-haiku-4-5'), f.anthropic)
})

test('response golden: Messages -> chat completion', () => {
  const f = fixture('reverse-response.json')
  assert.deepEqual(messageToChat(f.anthropic, 'gpt-alias', 1700000000), f.openai)
})

test('n > 1 is refused: Messages gives one answer', () => {
  assert.throws(() => chatToMessagesRequest({ model: 'm', n: 2, messages: [] }, 'm'), (e: unknown) => e instanceof GatewayError && e.code === 'GW_ERR_UNSUPPORTED_CONTENT')
})

/** Chat chunks -> Messages events -> chat chunks keeps what a chat client reads. */
test('stream round trip: text, reasoning, tool calls, finish and usage survive both translations', () => {
  const chatSse = readFileSync(new URL('stream-tools.openai.sse', dir))
  const forward = new ChatToMessagesStream('m')
  const anthropic = forward.push(chatSse) + forward.end()
  const back = new MessagesToChatStream('m', 1, true)
  let out = ''
  // One byte at a time: the reader must reassemble events split anywhere.
  for (let i = 0; i < anthropic.length; i++) out += back.push(anthropic[i]!)
  out += back.end()
  const summarize = (sse: string): { text: string; reasoning: string; tools: string[]; args: string; finish: string[]; usage: unknown; done: boolean } => {
    const r = { text: '', reasoning: '', tools: [] as string[], args: '', finish: [] as string[], usage: null as unknown, done: false }
    for (const ev of new SseReader().push(sse)) {
      if (ev.data === '[DONE]') {
        r.done = true
        continue
      }
      const c = JSON.parse(ev.data)
      if (c.usage) r.usage = { prompt: c.usage.prompt_tokens, completion: c.usage.completion_tokens }
      const ch = c.choices?.[0]
      if (!ch) continue
      r.text += ch.delta.content ?? ''
      r.reasoning += ch.delta.reasoning_content ?? ''
      for (const tc of ch.delta.tool_calls ?? []) {
        if (tc.function?.name) r.tools.push(`${tc.index}:${tc.id}:${tc.function.name}`)
        r.args += tc.function?.arguments ?? ''
      }
      if (ch.finish_reason) r.finish.push(ch.finish_reason)
    }
    return r
  }
  assert.deepEqual(summarize(out), summarize(chatSse.toString()))
})

test('an Anthropic error event becomes the chat-style error event and ends the stream', () => {
  const t = new MessagesToChatStream('m', 1, false)
  t.push('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3}}}\n\n')
  const err = t.push('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
  assert.deepEqual(JSON.parse(err.slice(6)), { error: { message: 'Overloaded', type: 'overloaded_error', param: null, code: 'overloaded_error' } })
  assert.equal(t.end(), '')
  const cut = new MessagesToChatStream('m', 1, false)
  cut.push('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n')
  assert.match(cut.end(), /GW_ERR_UPSTREAM_STREAM_BROKEN/)
})
