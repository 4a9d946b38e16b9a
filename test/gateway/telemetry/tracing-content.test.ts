/**
 * `captureContent: true`: the completion text on the SERVER span as gen_ai.output.messages, for
 * streamed and buffered answers of chat completions, completions, Responses and the Anthropic
 * Messages ingress; cut at `contentMaxLength` with a marker. Spans go over OTLP http/json to a
 * real receiver on 127.0.0.1. (Without captureContent, tracing.test checks no text is recorded.)
 */
// npm test: a process of its own (it sets OTEL_* variables for the whole file and registers the global tracer)
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { OutputCapture, TRUNCATED_MARKER } from '../../../gateway/src/telemetry/output-capture.ts'
import { activeTracing, startTracing } from '../../../gateway/src/telemetry/tracing.ts'
import { post, startGateway, startRawUpstream, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'
import { otlpAttributes, startOtlpJsonReceiver, type OtlpReceiver, type OtlpSpan } from '../../helpers/otlp-receiver.ts'


const MAX = 40
let spans: OtlpSpan[] = []
let receiver: OtlpReceiver
let gw: TestGateway
let upstream: Awaited<ReturnType<typeof startRawUpstream>>

const attrs = otlpAttributes
const sse = (events: unknown[]): string => events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n'
const chunk = (content: string, finish: string | null = null): unknown => ({ object: 'chat.completion.chunk', model: 'x', choices: [{ index: 0, delta: { content }, finish_reason: finish }] })

/** What the upstream answers, by the model the request names. */
const ANSWERS: Record<string, { sse: boolean; body: string | Buffer[] }> = {
  'chat-stream': { sse: true, body: sse([chunk('Hel'), chunk('lo wörld'), chunk('', 'stop')]) },
  'chat-buffered': { sse: false, body: JSON.stringify({ object: 'chat.completion', model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'A buffered answer' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 3 } }) },
  'text-stream': { sse: true, body: sse([{ object: 'text_completion', choices: [{ index: 0, text: 'once upon', finish_reason: null }] }, { object: 'text_completion', choices: [{ index: 0, text: ' a time', finish_reason: 'length' }] }]) },
  'responses-stream': {
    sse: true,
    body: [
      `event: response.output_text.delta\ndata: ${JSON.stringify({ type: 'response.output_text.delta', output_index: 0, delta: 'Resp' })}\n\n`,
      `event: response.output_text.delta\ndata: ${JSON.stringify({ type: 'response.output_text.delta', output_index: 0, delta: 'onses text' })}\n\n`,
      `event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { object: 'response', status: 'completed', output: [{ type: 'message', content: [{ type: 'output_text', text: 'Responses text' }] }] } })}\n\n`,
    ].map((s) => Buffer.from(s)),
  },
  'responses-buffered': { sse: false, body: JSON.stringify({ object: 'response', status: 'completed', model: 'x', output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A response body' }] }] }) },
  // A multi-byte character split across two chunks, and more text than contentMaxLength.
  'long-stream': { sse: true, body: [Buffer.from(sse([chunk('é'.repeat(30)), chunk('z'.repeat(30))]))] },
  'anthropic-stream': { sse: true, body: sse([chunk('Bonjour'), chunk(' toi', 'stop')]) },
  'anthropic-buffered': { sse: false, body: JSON.stringify({ object: 'chat.completion', model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'Guten Tag' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2 } }) },
}

before(async () => {
  receiver = await startOtlpJsonReceiver()
  spans = receiver.spans
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
  process.env.OTEL_TRACES_SAMPLER = 'parentbased_always_on'
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50'
  assert.ok(await startTracing({ captureContent: true, contentMaxLength: MAX }, createLogger('silent')))

  upstream = await startRawUpstream(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    // The gateway's own probes (no body) are not answers under test.
    if (req.method !== 'POST') return res.writeHead(404).end()
    const { model } = JSON.parse(Buffer.concat(chunks).toString()) as { model: string }
    const answer = ANSWERS[model] ?? assert.fail(`no answer for ${model}`)
    res.writeHead(200, { 'content-type': answer.sse ? 'text/event-stream' : 'application/json' })
    if (typeof answer.body === 'string') return res.end(answer.body)
    for (const b of answer.body) {
      if (model === 'long-stream') {
        // Cut inside the first é (two bytes in UTF-8).
        const at = b.indexOf('é') + 1
        res.write(b.subarray(0, at))
        res.write(b.subarray(at))
      } else res.write(b)
    }
    res.end()
  })
  gw = await startGateway({
    upstreams: [{ name: 'up', url: upstream.url, models: ['*'], pool: { warm: 0 } }],
    routing: { health: { intervalMs: 0 } },
  })
})

after(async () => {
  await gw?.close()
  await upstream?.close()
  await activeTracing()?.shutdown()
  receiver?.close()
})

/** The SERVER span's gen_ai.output.messages of the request sent with `id`. */
async function outputOf(path: string, body: Record<string, unknown>, id: string, headers: Record<string, string> = {}): Promise<unknown> {
  const res = await post(`${gw.url}${path}`, JSON.stringify(body), { 'x-request-id': id, ...headers })
  assert.equal(res.status, 200, await res.clone().text())
  await res.arrayBuffer()
  const server = (): OtlpSpan | undefined => spans.find((s) => s.kind === 2 && attrs(s)['velox.request_id'] === id)
  await eventually(() => server() ?? assert.fail(`no SERVER span for ${id}`), { what: 'the span', intervalMs: 25 })
  const messages = attrs(server()!)['gen_ai.output.messages']
  return messages === undefined ? undefined : JSON.parse(messages as string)
}

const text = (content: string, finish?: string): unknown => [{ role: 'assistant', parts: [{ type: 'text', content }], ...(finish !== undefined ? { finish_reason: finish } : {}) }]
const chat = (model: string, stream: boolean): Record<string, unknown> => ({ model, stream, messages: [{ role: 'user', content: 'hi' }] })

test('chat completions: a streamed and a buffered answer are recorded as gen_ai.output.messages', async () => {
  assert.deepEqual(await outputOf('/v1/chat/completions', chat('chat-stream', true), 'c-stream'), text('Hello wörld', 'stop'))
  assert.deepEqual(await outputOf('/v1/chat/completions', chat('chat-buffered', false), 'c-buffered'), text('A buffered answer', 'stop'))
})

test('completions and Responses, streamed and buffered', async () => {
  assert.deepEqual(await outputOf('/v1/completions', { model: 'text-stream', stream: true, prompt: 'tell' }, 't-stream'), text('once upon a time', 'length'))
  // The completed event repeats the whole text: it is not counted twice.
  assert.deepEqual(await outputOf('/v1/responses', { model: 'responses-stream', stream: true, input: 'hi' }, 'r-stream'), text('Responses text', 'stop'))
  assert.deepEqual(await outputOf('/v1/responses', { model: 'responses-buffered', input: 'hi' }, 'r-buffered'), text('A response body', 'stop'))
})

test('Anthropic Messages ingress: the answer is recorded, streamed and buffered', async () => {
  const body = (model: string, stream: boolean): Record<string, unknown> => ({ model, max_tokens: 16, stream, messages: [{ role: 'user', content: 'hi' }] })
  assert.deepEqual(await outputOf('/v1/messages', body('anthropic-stream', true), 'a-stream'), text('Bonjour toi', 'stop'))
  assert.deepEqual(await outputOf('/v1/messages', body('anthropic-buffered', false), 'a-buffered'), text('Guten Tag', 'stop'))
})

test('text past contentMaxLength is cut and marked; a character split across chunks survives', async () => {
  const out = (await outputOf('/v1/chat/completions', chat('long-stream', true), 'long')) as Array<{ parts: Array<{ content: string }> }>
  assert.equal(out[0]!.parts[0]!.content, 'é'.repeat(30) + 'z'.repeat(MAX - 30) + TRUNCATED_MARKER)
})

test('an unsampled request gets no span, so nothing is captured', async () => {
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify(chat('chat-stream', true)), { 'x-request-id': 'unsampled', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' })
  assert.equal(res.status, 200)
  await res.arrayBuffer()
  // A sampled request sent after it is exported; the unsampled one never is.
  await outputOf('/v1/chat/completions', chat('chat-buffered', false), 'after-unsampled')
  assert.equal(spans.filter((s) => attrs(s)['velox.request_id'] === 'unsampled').length, 0)
})

test('OutputCapture: a buffered body past its byte bound is not parsed, only marked; unknown shapes record nothing', () => {
  const big = new OutputCapture(false, 16)
  big.add(Buffer.alloc(4 * 16 + 65_537, 0x20))
  assert.deepEqual(JSON.parse(big.messages()!), text(TRUNCATED_MARKER))
  const other = new OutputCapture(true, 16)
  other.add(Buffer.from('data: {"object":"embedding","data":[]}\n\n: comment\n\n'))
  assert.equal(other.messages(), null)
  const notJson = new OutputCapture(false, 16)
  notJson.add(Buffer.from('<html>bad gateway</html>'))
  assert.equal(notJson.messages(), null)
})

test('OutputCapture: Anthropic Messages from an upstream that speaks it natively, streamed and buffered', () => {
  const stream = new OutputCapture(true, 64)
  stream.add(Buffer.from('event: message_start\ndata: {"type":"message_start","message":{"content":[]}}\n\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}\n\n'))
  stream.add(Buffer.from('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"there"}}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n'))
  assert.deepEqual(JSON.parse(stream.messages()!), text('Hi there', 'end_turn'))
  const body = new OutputCapture(false, 64)
  body.add(Buffer.from('{"type":"message","role":"assistant","content":[{"type":"text","text":"Whole"},{"type":"tool_use","id":"t","name":"f","input":{}},{"type":"text","text":" answer"}],"stop_reason":"end_turn"}'))
  assert.deepEqual(JSON.parse(body.messages()!), text('Whole answer', 'end_turn'))
})
