/** Golden fixtures: Anthropic Messages <-> OpenAI chat, requests, responses and streams. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { messagesToChat } from '../../../gateway/src/protocols/anthropic/request.ts'
import { chatToMessage } from '../../../gateway/src/protocols/anthropic/response.ts'
import { ChatToMessagesStream } from '../../../gateway/src/protocols/anthropic/stream.ts'
import { fromOpenAIErrorBody, anthropicErrorType } from '../../../gateway/src/protocols/anthropic/errors.ts'
import { GatewayError } from '../../../gateway/src/errors.ts'

const dir = new URL('../../fixtures/protocols/anthropic/', import.meta.url)
const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(name, dir), 'utf8'))
const text = (name: string): string => readFileSync(new URL(name, dir), 'utf8')

for (const name of ['request-full.json', 'request-simple.json']) {
  test(`request golden ${name}: Anthropic Messages -> OpenAI chat`, () => {
    const f = fixture(name)
    const out = messagesToChat(f.anthropic as Record<string, unknown>)
    assert.deepEqual(out.chat, f.openai)
  })
}

for (const name of ['response-tools.json', 'response-stop.json']) {
  test(`response golden ${name}: OpenAI chat completion -> Anthropic Message`, () => {
    const f = fixture(name)
    assert.deepEqual(chatToMessage(f.openai as Record<string, unknown>, 'claude-alias', f.stopSequences as string[]), f.anthropic)
  })
}

/** Feeds the stream in pieces of every size from 1 to 64 bytes, so events split anywhere. */
for (const name of ['stream-tools', 'stream-broken']) {
  test(`stream golden ${name}: chat.completion.chunk events -> Anthropic events, however the bytes are split`, () => {
    const input = Buffer.from(text(`${name}.openai.sse`))
    const expected = text(`${name}.anthropic.sse`)
    for (const size of [1, 2, 3, 7, 37, 64, input.length]) {
      const t = new ChatToMessagesStream('claude-alias')
      let out = ''
      for (let i = 0; i < input.length; i += size) out += t.push(input.subarray(i, i + size))
      out += t.end()
      assert.equal(out, expected, `split every ${size} bytes`)
    }
  })
}

test('stream: every event is emitted with the chunk that caused it (nothing held back but the end)', () => {
  const t = new ChatToMessagesStream('m')
  const first = t.push('data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":"A"},"finish_reason":null}]}\n\n')
  assert.match(first, /^event: message_start\n/)
  assert.match(first, /"text_delta","text":"A"/)
  assert.equal(t.push('data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"B"},"finish_reason":null}]}\n'), '')
  assert.match(t.push('\n'), /"text":"B"/)
  const finish = t.push('data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n')
  assert.equal(finish, 'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n')
  // No usage chunk and no [DONE]: the end of the body closes the message with what is known.
  assert.match(t.end(), /"stop_reason":"max_tokens".*\n\nevent: message_stop\n/s)
})

test('stream: a body that ends without a finish is an error, never a complete message', () => {
  const t = new ChatToMessagesStream('m')
  t.push('data: {"id":"c","choices":[{"index":0,"delta":{"content":"A"},"finish_reason":null}]}\n\n')
  const end = t.end()
  assert.match(end, /^event: error\ndata: \{"type":"error","error":\{"type":"api_error"/)
  assert.doesNotMatch(end, /message_stop/)
})

test('stream: stop sequence reported by vLLM, and nothing after the end', () => {
  const t = new ChatToMessagesStream('m', ['STOP'])
  t.push('data: {"id":"c","choices":[{"index":0,"delta":{"content":"A"},"finish_reason":"stop","stop_reason":"STOP"}]}\n\n')
  const done = t.push('data: [DONE]\n\n')
  assert.match(done, /"stop_reason":"stop_sequence","stop_sequence":"STOP"/)
  assert.equal(t.push('data: {"id":"c","choices":[{"index":0,"delta":{"content":"late"}}]}\n\n'), '')
  assert.equal(t.end(), '')
})

test('stream: a rate-limit error event keeps its type', () => {
  const t = new ChatToMessagesStream('m')
  const out = t.push('data: {"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}\n\n')
  assert.deepEqual(JSON.parse(out.split('data: ')[1]!), { type: 'error', error: { type: 'rate_limit_error', message: 'slow down', code: 'rate_limit_exceeded' } })
})

test('errors: statuses map to the types the Anthropic SDK expects', () => {
  assert.deepEqual(
    [400, 401, 403, 404, 405, 413, 415, 429, 500, 502, 503, 504, 529].map(anthropicErrorType),
    ['invalid_request_error', 'authentication_error', 'permission_error', 'not_found_error', 'invalid_request_error', 'request_too_large', 'invalid_request_error', 'rate_limit_error', 'api_error', 'api_error', 'overloaded_error', 'api_error', 'overloaded_error'],
  )
  assert.deepEqual(JSON.parse(fromOpenAIErrorBody(400, '{"error":{"message":"bad temperature","type":"BadRequestError","param":null,"code":400}}')), {
    type: 'error',
    error: { type: 'invalid_request_error', message: 'bad temperature' },
  })
  assert.deepEqual(JSON.parse(fromOpenAIErrorBody(422, '{"detail":"field required"}')), { type: 'error', error: { type: 'invalid_request_error', message: 'field required' } })
  const native = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
  assert.equal(fromOpenAIErrorBody(529, native), native)
  assert.deepEqual(JSON.parse(fromOpenAIErrorBody(502, 'Bad Gateway')), { type: 'error', error: { type: 'api_error', message: 'Bad Gateway' } })
})

test('requests the upstream protocol cannot express are refused with the field named', () => {
  const base = { model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }
  const refuse = (body: Record<string, unknown>, code: string, param: RegExp): void => {
    assert.throws(() => messagesToChat(body), (err: unknown) => err instanceof GatewayError && err.code === code && param.test(err.message))
  }
  refuse({ ...base, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'GW_ERR_UNSUPPORTED_CONTENT', /tools\[0\]: server tool "web_search_20250305"/)
  refuse({ ...base, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'x' } }] }] }, 'GW_ERR_UNSUPPORTED_CONTENT', /messages\[0\]\.content\[0\]/)
  refuse({ ...base, max_tokens: undefined }, 'GW_ERR_INVALID_BODY', /max_tokens/)
  refuse({ ...base, messages: [] }, 'GW_ERR_INVALID_BODY', /messages/)
  refuse({ ...base, messages: [{ role: 'system', content: 'x' }] }, 'GW_ERR_INVALID_BODY', /messages\[0\]\.role/)
  refuse({ ...base, tool_choice: { type: 'sometimes' } }, 'GW_ERR_INVALID_BODY', /tool_choice\.type/)
  refuse({ ...base, stop_sequences: 'x' }, 'GW_ERR_INVALID_BODY', /stop_sequences/)
  refuse({ ...base, model: '' }, 'GW_ERR_MODEL_REQUIRED', /model/)
  // count_tokens takes the same body without max_tokens.
  assert.equal(messagesToChat({ ...base, max_tokens: undefined }, true).chat.max_tokens, undefined)
})
