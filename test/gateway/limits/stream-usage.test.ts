import { test } from 'node:test'
import assert from 'node:assert/strict'
import { askForStreamUsage, needsStreamUsage, UsageEventFilter } from '../../../gateway/src/limits/stream-usage.ts'

const events = [
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
  'data: [DONE]\n\n',
]
const stream = events.join('')
const expected = events.filter((_, i) => i !== 3).join('')

function run(chunks: Buffer[]): string {
  const f = new UsageEventFilter()
  let out = ''
  for (const c of chunks) out += f.filter(c).toString()
  return out + f.flush().toString()
}

test('the usage event is removed however the stream is cut into chunks', () => {
  const bytes = Buffer.from(stream)
  assert.equal(run([bytes]), expected)
  assert.equal(run(events.map((e) => Buffer.from(e))), expected)
  for (let size = 1; size < 40; size += 3) {
    const chunks: Buffer[] = []
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size))
    assert.equal(run(chunks), expected, `chunks of ${size}`)
  }
})

test('content that mentions "usage" and a choices array is not touched; complete events pass at once', () => {
  const talk = 'data: {"choices":[{"index":0,"delta":{"content":"the \\"usage\\" of choices: []"}}]}\n\n'
  const f = new UsageEventFilter()
  assert.equal(f.filter(Buffer.from(talk)).toString(), talk)
  assert.equal(f.filter(Buffer.from('data: {"cho')).length, 0, 'an incomplete event waits for its end')
  assert.equal(f.filter(Buffer.from('ices":[]}\n\n')).toString(), 'data: {"choices":[]}\n\n', 'no usage in it: kept')
  assert.equal(f.flush().length, 0)
})

test('the request asks for usage with one field added, keeping the client bytes', () => {
  const raw = Buffer.from(' {"model":"m","stream":true,"messages":[]}')
  const out = askForStreamUsage(raw, JSON.parse(raw.toString()))
  assert.deepEqual(JSON.parse(out.toString()), { stream_options: { include_usage: true }, model: 'm', stream: true, messages: [] })
  const own = { model: 'm', stream: true, stream_options: { include_usage: false, continuous_usage_stats: true } }
  assert.deepEqual(JSON.parse(askForStreamUsage(Buffer.from(JSON.stringify(own)), own).toString()).stream_options, { include_usage: true, continuous_usage_stats: true })
  assert.equal(needsStreamUsage('chat.completions', { stream: true }), true)
  assert.equal(needsStreamUsage('chat.completions', { stream: true, stream_options: { include_usage: true } }), false)
  assert.equal(needsStreamUsage('chat.completions', { stream: false }), false)
  assert.equal(needsStreamUsage('embeddings', { stream: true }), false)
})
