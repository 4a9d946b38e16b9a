/**
 * `kind: bedrock`, the pure parts: chat <-> Converse, ConverseStream events -> chat chunks, the
 * AWS event-stream framing, and SigV4 (AWS's published examples, and the same Bedrock request
 * signed by Smithy's signer, the one the AWS SDKs use).
 */
import { describe, mock, test } from 'node:test'
import assert from 'node:assert/strict'
import { Sha256 } from '@aws-crypto/sha256-js'
import { SignatureV4 } from '@smithy/signature-v4'
import aws4 from 'aws4'
import { GatewayError } from '../../../gateway/src/errors.ts'
import { CachedCredentials, type AwsCredentials } from '../../../gateway/src/providers/aws-credentials.ts'
import { regionOfHost, sign } from '../../../gateway/src/providers/bedrock.ts'
import { chatErrorBody, chatToConverse, ConverseStreamToChat, converseToChat } from '../../../gateway/src/protocols/bedrock/converse.ts'
import { encodeMessage, EventStreamReader, exceptionAtStart } from '../../../gateway/src/protocols/bedrock/event-stream.ts'
import { SseReader } from '../../../gateway/src/protocols/sse.ts'

const EXAMPLE = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }

describe('chat -> Converse', () => {
  test('system, turns, images, tool calls and results, sampling, stop, user', () => {
    const chat = {
      model: 'alias',
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use tools.' }] },
        { role: 'user', content: [{ type: 'text', text: 'What is here?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
        { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'a cat' },
        { role: 'user', content: 'And?' },
      ],
      max_tokens: 100,
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      stop: ['END'],
      user: 'u-1',
      stream: true,
      stream_options: { include_usage: true },
      tools: [{ type: 'function', function: { name: 'lookup', description: 'Looks up', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }],
      tool_choice: 'required',
    }
    const { body, stream } = chatToConverse(chat)
    assert.equal(stream, true)
    assert.deepEqual(body, {
      system: [{ text: 'Be terse.' }, { text: 'Use tools.' }],
      messages: [
        { role: 'user', content: [{ text: 'What is here?' }, { image: { format: 'png', source: { bytes: 'iVBORw0KGgo=' } } }] },
        { role: 'assistant', content: [{ text: 'Let me look.' }, { toolUse: { toolUseId: 'call_1', name: 'lookup', input: { q: 'x' } } }] },
        // The tool result and the next user text are one user turn: Converse alternates roles.
        { role: 'user', content: [{ toolResult: { toolUseId: 'call_1', content: [{ text: 'a cat' }] } }, { text: 'And?' }] },
      ],
      inferenceConfig: { maxTokens: 100, temperature: 0.2, topP: 0.9, stopSequences: ['END'] },
      additionalModelRequestFields: { top_k: 40 },
      requestMetadata: { user: 'u-1' },
      toolConfig: { tools: [{ toolSpec: { name: 'lookup', description: 'Looks up', inputSchema: { json: { type: 'object', properties: { q: { type: 'string' } } } } } }], toolChoice: { any: {} } },
    })
  })

  test('defaults and tool_choice forms', () => {
    const tools = [{ type: 'function', function: { name: 'f' } }]
    const base = { messages: [{ role: 'user', content: 'hi' }] }
    assert.deepEqual(chatToConverse(base).body, { messages: [{ role: 'user', content: [{ text: 'hi' }] }], inferenceConfig: { maxTokens: 4096 } })
    assert.equal(chatToConverse({ ...base, max_completion_tokens: 7, max_tokens: 9 }).body.inferenceConfig && (chatToConverse({ ...base, max_completion_tokens: 7 }).body.inferenceConfig as { maxTokens: number }).maxTokens, 7)
    assert.deepEqual((chatToConverse({ ...base, tools, tool_choice: { type: 'function', function: { name: 'f' } } }).body.toolConfig as { toolChoice: unknown }).toolChoice, { tool: { name: 'f' } })
    assert.deepEqual((chatToConverse({ ...base, tools, tool_choice: 'auto' }).body.toolConfig as { toolChoice: unknown }).toolChoice, { auto: {} })
    assert.deepEqual((chatToConverse({ ...base, tools }).body.toolConfig as { tools: unknown }).tools, [{ toolSpec: { name: 'f', inputSchema: { json: { type: 'object', properties: {} } } } }])
    // "none" with no tool blocks in the history: the tools are not offered.
    assert.equal(chatToConverse({ ...base, tools, tool_choice: 'none' }).body.toolConfig, undefined)
  })

  test('what Converse cannot carry is refused with the field named', () => {
    const refused = (chat: Record<string, unknown>, param: RegExp): void => {
      assert.throws(() => chatToConverse(chat), (e: unknown) => e instanceof GatewayError && e.code === 'GW_ERR_UNSUPPORTED_CONTENT' && param.test(e.message))
    }
    refused({ n: 2, messages: [] }, /n > 1/)
    refused({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }, /messages\[0\]\.content\[0\].*data: URLs/)
    refused({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/bmp;base64,AAAA' } }] }] }, /image\/bmp/)
    refused({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }, /input_audio/)
    refused({ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: 'r' }] }, /tool definitions/)
  })
})

describe('Converse -> chat', () => {
  test('text, reasoning, tool use, stop reasons, usage with cache reads', () => {
    const answer = {
      output: { message: { role: 'assistant', content: [{ reasoningContent: { reasoningText: { text: 'thinking', signature: 's' } } }, { text: 'Calling.' }, { toolUse: { toolUseId: 'tu_1', name: 'lookup', input: { q: 'x' } } }] } },
      stopReason: 'tool_use',
      usage: { inputTokens: 10, outputTokens: 5, totalTokens: 19, cacheReadInputTokens: 4 },
      metrics: { latencyMs: 80 },
    }
    assert.deepEqual(converseToChat(answer, 'my-model', 1700000000, 'req-1'), {
      id: 'chatcmpl-req-1',
      object: 'chat.completion',
      created: 1700000000,
      model: 'my-model',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Calling.', reasoning_content: 'thinking', tool_calls: [{ id: 'tu_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } }] }, logprobs: null, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 14, completion_tokens: 5, total_tokens: 19, prompt_tokens_details: { cached_tokens: 4 } },
    })
    const reason = (stopReason: string): unknown => (converseToChat({ output: { message: { content: [] } }, stopReason }, 'm', 0, null).choices as { finish_reason: string }[])[0]!.finish_reason
    assert.deepEqual(['end_turn', 'stop_sequence', 'max_tokens', 'guardrail_intervened', 'content_filtered', 'model_context_window_exceeded'].map(reason), ['stop', 'stop', 'length', 'content_filter', 'content_filter', 'length'])
  })

  test('errors keep Bedrock\'s exception name and message', () => {
    assert.deepEqual(JSON.parse(chatErrorBody(429, 'ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/', '{"message":"Too many requests, please wait before trying again."}')), {
      error: { message: 'Too many requests, please wait before trying again.', type: 'ThrottlingException', param: null, code: 'ThrottlingException' },
    })
    assert.equal(JSON.parse(chatErrorBody(500, null, 'oops')).error.type, 'InternalServerException')
  })
})

/** A ConverseStream as Bedrock sends it: text, then a tool call, stop, usage (with padding). */
function converseStream(): Buffer[] {
  const ev = (type: string, payload: unknown): Buffer => encodeMessage('event', type, JSON.stringify(payload))
  return [
    ev('messageStart', { role: 'assistant', p: 'abcd' }),
    ev('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'hmm' } }, p: 'ab' }),
    ev('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'sig' } } }),
    ev('contentBlockStop', { contentBlockIndex: 0 }),
    ev('contentBlockDelta', { contentBlockIndex: 1, delta: { text: 'Hello' } }),
    ev('contentBlockDelta', { contentBlockIndex: 1, delta: { text: ' world' }, p: 'abcdefgh' }),
    ev('contentBlockStop', { contentBlockIndex: 1 }),
    ev('contentBlockStart', { contentBlockIndex: 2, start: { toolUse: { toolUseId: 'tu_1', name: 'lookup' } } }),
    ev('contentBlockDelta', { contentBlockIndex: 2, delta: { toolUse: { input: '{"q":' } } }),
    ev('contentBlockDelta', { contentBlockIndex: 2, delta: { toolUse: { input: '"x"}' } } }),
    ev('contentBlockStop', { contentBlockIndex: 2 }),
    ev('messageStop', { stopReason: 'tool_use' }),
    ev('metadata', { usage: { inputTokens: 12, outputTokens: 7, totalTokens: 19 }, metrics: { latencyMs: 50 } }),
  ]
}

interface ChatSummary { text: string; reasoning: string; tools: unknown[]; args: string; finish: unknown[]; usage: unknown; done: boolean; errors: unknown[] }

function summarize(sse: string): ChatSummary {
  const r: ChatSummary = { text: '', reasoning: '', tools: [], args: '', finish: [], usage: null, done: false, errors: [] }
  for (const ev of new SseReader().push(sse)) {
    if (ev.data === '[DONE]') {
      r.done = true
      continue
    }
    const c = JSON.parse(ev.data) as { error?: unknown; usage?: unknown; choices?: { delta: { content?: string; reasoning_content?: string; tool_calls?: { id?: string; function: { name?: string; arguments: string } }[] }; finish_reason: string | null }[] }
    if (c.error !== undefined) r.errors.push(c.error)
    if (c.usage) r.usage = c.usage
    for (const ch of c.choices ?? []) {
      r.text += ch.delta.content ?? ''
      r.reasoning += ch.delta.reasoning_content ?? ''
      for (const tc of ch.delta.tool_calls ?? []) {
        if (tc.id !== undefined) r.tools.push({ id: tc.id, name: tc.function.name })
        r.args += tc.function.arguments
      }
      if (ch.finish_reason !== null) r.finish.push(ch.finish_reason)
    }
  }
  return r
}

describe('ConverseStream -> chat chunks', () => {
  test('every event in order, split at every byte; usage and [DONE] after metadata', () => {
    const wire = Buffer.concat(converseStream())
    const reader = new EventStreamReader()
    const t = new ConverseStreamToChat('m', 1, true, 'req-9')
    let out = ''
    let writes = 0
    // One byte at a time: messages are reassembled wherever the response's chunks split them.
    for (let i = 0; i < wire.length; i++) {
      const piece = t.push(reader.push(wire.subarray(i, i + 1)))
      if (piece !== '') writes++
      out += piece
    }
    out += t.end()
    assert.equal(reader.buffered, 0)
    assert.deepEqual(summarize(out), {
      text: 'Hello world', reasoning: 'hmm', tools: [{ id: 'tu_1', name: 'lookup' }], args: '{"q":"x"}', finish: ['tool_calls'],
      usage: { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19, prompt_tokens_details: { cached_tokens: 0 } }, done: true, errors: [],
    })
    // One chat chunk per content event as it completes: nothing is held back.
    assert.equal(writes, 9)
    assert.match(out, /"id":"chatcmpl-req-9"/)
  })

  test('an exception ends the stream with a chat-style error; a cut stream with GW_ERR_UPSTREAM_STREAM_BROKEN', () => {
    const events = converseStream()
    const t = new ConverseStreamToChat('m', 1, false, null)
    const reader = new EventStreamReader()
    let out = t.push(reader.push(Buffer.concat(events.slice(0, 5))))
    out += t.push(reader.push(encodeMessage('exception', 'modelStreamErrorException', '{"message":"The model failed"}')))
    out += t.push(reader.push(events[5]!)) + t.end()
    const s = summarize(out)
    assert.equal(s.text, 'Hello')
    assert.deepEqual(s.errors, [{ message: 'The model failed', type: 'modelStreamErrorException', param: null, code: 'modelStreamErrorException' }])
    assert.equal(s.done, false)
    const cut = new ConverseStreamToChat('m', 1, false, null)
    const cutOut = cut.push(new EventStreamReader().push(Buffer.concat(events.slice(0, 5)))) + cut.end()
    assert.match(cutOut, /GW_ERR_UPSTREAM_STREAM_BROKEN/)
    // Cut after messageStop: only the usage is lost, the answer is complete.
    const late = new ConverseStreamToChat('m', 1, false, null)
    const lateOut = late.push(new EventStreamReader().push(Buffer.concat(events.slice(0, 12)))) + late.end()
    assert.equal(summarize(lateOut).done, true)
    assert.deepEqual(summarize(lateOut).errors, [])
  })
})

describe('event-stream framing', () => {
  test('checksums are checked; a frame that is no message is refused', () => {
    const good = encodeMessage('event', 'messageStart', '{"role":"assistant"}')
    assert.equal(new EventStreamReader().push(good)[0]!.type, 'messageStart')
    const corrupt = Buffer.from(good)
    corrupt[corrupt.length - 6]! ^= 0xff
    assert.throws(() => new EventStreamReader().push(corrupt), /checksum/)
    assert.throws(() => new EventStreamReader().push(Buffer.from('{"message":"not a stream"}')), /not an event-stream message/)
  })

  test('exceptionAtStart reads the first message\'s type in place', () => {
    assert.equal(exceptionAtStart(encodeMessage('exception', 'throttlingException', '{"message":"slow down"}')), 'throttlingException')
    assert.equal(exceptionAtStart(encodeMessage('exception', 'modelStreamErrorException', '{}')), 'modelStreamErrorException')
    assert.equal(exceptionAtStart(encodeMessage('event', 'messageStart', '{"role":"assistant"}')), null)
    assert.equal(exceptionAtStart(Buffer.from('data: {}')), null)
    const ex = encodeMessage('exception', 'throttlingException', '{}')
    for (let n = 0; n < ex.length; n++) exceptionAtStart(ex.subarray(0, n)) // never throws on a short first chunk
  })
})

describe('SigV4', () => {
  test('aws4 reproduces AWS\'s published examples (IAM ListUsers; the test suite\'s get-vanilla)', () => {
    const iam = aws4.sign({
      host: 'iam.amazonaws.com', path: '/?Action=ListUsers&Version=2010-05-08', method: 'GET', service: 'iam', region: 'us-east-1',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8', 'X-Amz-Date': '20150830T123600Z' },
    }, EXAMPLE)
    assert.equal((iam.headers as Record<string, string>).Authorization, 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7')
    const vanilla = aws4.sign({ host: 'example.amazonaws.com', path: '/', method: 'GET', service: 'service', region: 'us-east-1', headers: { 'X-Amz-Date': '20150830T123600Z' } }, EXAMPLE)
    assert.equal((vanilla.headers as Record<string, string>).Authorization, 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31')
  })

  test('a Converse request signs as the AWS SDK\'s own signer signs it (model id with ":", session token)', async () => {
    const host = 'bedrock-runtime.us-west-2.amazonaws.com'
    const path = `/model/${encodeURIComponent('us.anthropic.claude-3-5-haiku-20241022-v1:0')}/converse-stream`
    const body = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'héllo' }] }] }))
    const creds: AwsCredentials = { ...EXAMPLE, sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN//+=' }
    const cached = new CachedCredentials(() => Promise.resolve(creds))
    await cached.ready()
    const at = Date.UTC(2026, 0, 2, 3, 4, 5)
    mock.timers.enable({ apis: ['Date'], now: at })
    let ours: string[]
    try {
      ours = sign(cached, 'us-west-2', host, path, body)
    } finally {
      mock.timers.reset()
    }
    const smithy = new SignatureV4({ service: 'bedrock', region: 'us-west-2', credentials: creds, sha256: Sha256, applyChecksum: false })
    const signed = await smithy.sign(
      { method: 'POST', protocol: 'https:', hostname: host, path, query: {}, headers: { host, 'content-type': 'application/json', 'content-length': String(body.length) }, body },
      { signingDate: new Date(at) },
    )
    const get = (name: string): string | undefined => ours[ours.indexOf(name) + 1]
    assert.equal(get('x-amz-date'), '20260102T030405Z')
    assert.equal(get('x-amz-security-token'), creds.sessionToken)
    assert.equal(get('authorization'), signed.headers.authorization)
    assert.match(get('authorization')!, /SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token, /)
  })

  test('the region comes from a Bedrock runtime host', () => {
    assert.equal(regionOfHost('bedrock-runtime.eu-central-1.amazonaws.com'), 'eu-central-1')
    assert.equal(regionOfHost('bedrock-runtime-fips.us-east-1.amazonaws.com'), 'us-east-1')
    assert.equal(regionOfHost('127.0.0.1:8080'), null)
  })
})

describe('cached AWS credentials', () => {
  test('refreshed in the background ahead of expiry; expired ones are never used', async () => {
    let now = 1_000_000
    let calls = 0
    let next: AwsCredentials = { accessKeyId: 'A1', secretAccessKey: 's', expiration: new Date(now + 60 * 60_000) }
    let fail: Error | null = null
    const cached = new CachedCredentials(async () => {
      calls++
      if (fail !== null) throw fail
      return next
    }, () => now)
    assert.throws(() => cached.current(), (e: unknown) => e instanceof GatewayError && e.code === 'GW_ERR_UPSTREAM_CREDENTIALS' && e.retryAfter === 1)
    await cached.ready()
    assert.equal(cached.current().accessKeyId, 'A1')
    const loadsBefore = calls
    // 56 minutes on: within 5 minutes of expiry, the old key still signs while a new one loads.
    now += 56 * 60_000
    next = { accessKeyId: 'A2', secretAccessKey: 's', expiration: new Date(now + 60 * 60_000) }
    assert.equal(cached.current().accessKeyId, 'A1')
    await cached.ready()
    assert.equal(calls, loadsBefore + 1)
    assert.equal(cached.current().accessKeyId, 'A2')
    // The chain fails and the key expires: requests are refused with the chain's reason.
    fail = new Error('Could not load credentials from any providers')
    now += 61 * 60_000
    assert.throws(() => cached.current(), /GW_ERR_UPSTREAM_CREDENTIALS|credentials/)
    await cached.ready()
    assert.equal(cached.lastError, 'Could not load credentials from any providers')
    assert.throws(() => cached.current(), (e: unknown) => e instanceof GatewayError && /Could not load credentials from any providers/.test(e.message))
  })
})
