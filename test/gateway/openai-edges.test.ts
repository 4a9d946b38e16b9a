/**
 * OpenAI edge cases a new user meets: Responses streams that fail, models.retrieve, forwarded
 * client headers, CORS, compressed request bodies; with the official SDKs where they apply.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { brotliCompressSync, gzipSync, zstdCompressSync } from 'node:zlib'
import OpenAI from 'openai'
import { createOpenAI } from '@ai-sdk/openai'
import { TypeValidationError, generateText, jsonSchema, streamText, tool } from 'ai'
import { parseConfig } from '../../gateway/src/config/load.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'

;(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false

describe('OpenAI edge cases', () => {
  let sim: Simulator
  let gw: TestGateway

  before(async () => {
    sim = await startSimulator({ tokens: 6, models: ['velox-sim-1'] })
    gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 } }],
      routing: { aliases: { fast: { model: 'velox-sim-1' } } },
      server: { cors: { origins: ['https://app.example.com'] } },
    })
  })
  after(async () => {
    await gw.close()
    await sim.close()
  })

  test('a Responses stream that breaks ends with a Responses error event the AI SDK accepts', async () => {
    sim.setFaults({ resetAfterChunks: 3, interTokenMs: 1 })
    try {
      const openai = createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused' })
      // onError: the SDK would log the (expected) error to the console.
      const result = streamText({ model: openai.responses('velox-sim-1'), prompt: 'Hello', maxRetries: 0, onError: () => undefined })
      const errors: unknown[] = []
      for await (const part of result.fullStream) if (part.type === 'error') errors.push(part.error)
      assert.equal(errors.length, 1)
      assert.equal(TypeValidationError.isInstance(errors[0]), false, `a type validation error: ${String(errors[0])}`)
      assert.match(JSON.stringify(errors[0]), /GW_ERR_UPSTREAM_STREAM_BROKEN/)
    } finally {
      sim.clearFaults()
    }
    // The raw event, as OpenAI sends it.
    sim.setFaults({ resetAfterChunks: 2 })
    try {
      const res = await post(`${gw.url}/v1/responses`, JSON.stringify({ model: 'velox-sim-1', input: 'hi', stream: true }))
      const text = await res.text()
      const last = text.trimEnd().split('\n\n').at(-1)!
      assert.match(last, /^event: error\ndata: /)
      const data = JSON.parse(last.split('data: ')[1]!) as Record<string, unknown>
      assert.equal(data.type, 'error')
      assert.equal(data.code, 'GW_ERR_UPSTREAM_STREAM_BROKEN')
      assert.equal(typeof data.sequence_number, 'number')
    } finally {
      sim.clearFaults()
    }
  })

  test('a stream whose first event is `event: error` (Responses, Messages) fails over before the first byte', async () => {
    const broken = await startSimulator({ tokens: 6, models: ['velox-sim-1'] })
    broken.setFaults({ errorEventFirst: true })
    const failover = await startGateway({
      upstreams: [
        { name: 'broken', url: broken.url, models: ['velox-sim-1'], priority: 0, pool: { warm: 0 } },
        { name: 'broken-anthropic', kind: 'anthropic', url: broken.url, models: ['claude-sim'], priority: 0, pool: { warm: 0 } },
        { name: 'healthy', url: sim.url, models: ['velox-sim-1', 'claude-sim'], priority: 1, pool: { warm: 0 } },
      ],
    })
    try {
      const responses = await post(`${failover.url}/v1/responses`, JSON.stringify({ model: 'velox-sim-1', input: 'hi', stream: true }))
      assert.equal(responses.headers.get('x-velox-upstream'), 'healthy')
      assert.match(await responses.text(), /event: response\.completed/)
      // An Anthropic upstream's Messages error event, for an OpenAI chat stream.
      const chat = await post(`${failover.url}/v1/chat/completions`, JSON.stringify({ model: 'claude-sim', stream: true, messages: [{ role: 'user', content: 'hi' }] }))
      assert.equal(chat.headers.get('x-velox-upstream'), 'healthy')
      assert.match(await chat.text(), /data: \[DONE\]/)
      assert.ok((broken.stats().byPath['/v1/responses'] ?? 0) >= 1 && (broken.stats().byPath['/v1/messages'] ?? 0) >= 1, 'the broken upstream was tried first')
    } finally {
      await failover.close()
      await broken.close()
    }
  })

  test('models.retrieve agrees with what chat accepts: "*" upstreams, aliases by the name asked', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused' })
    const demo = await client.models.retrieve('demo')
    assert.equal(demo.id, 'demo')
    const chat = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(chat.object, 'chat.completion')
    assert.equal((await client.models.retrieve('fast')).id, 'fast')
    const listed = (await client.models.list()).data.map((m) => m.id)
    for (const id of listed) assert.equal((await client.models.retrieve(id)).id, id)
    assert.ok(listed.includes('fast') && listed.includes('velox-sim-1'))
  })

  test('a model no upstream serves is still a 404 on retrieve', async () => {
    const strict = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'], pool: { warm: 0 } }] })
    try {
      const client = new OpenAI({ baseURL: `${strict.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      await assert.rejects(client.models.retrieve('demo'), OpenAI.NotFoundError)
    } finally {
      await strict.close()
    }
  })

  test('CORS: an allowed origin gets its preflight answered and the headers on streamed answers; others get none', async () => {
    const pre = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    })
    assert.equal(pre.status, 204)
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example.com')
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/)
    assert.equal(pre.headers.get('access-control-allow-headers'), 'authorization, content-type')
    assert.equal(pre.headers.get('access-control-max-age'), '600')
    const stream = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true }), { origin: 'https://app.example.com' })
    assert.equal(stream.headers.get('access-control-allow-origin'), 'https://app.example.com')
    assert.match(stream.headers.get('access-control-expose-headers') ?? '', /x-velox-upstream/)
    assert.equal(stream.headers.get('vary'), 'Origin')
    await stream.text()
    const err = await post(`${gw.url}/v1/chat/completions`, '{}', { origin: 'https://app.example.com' })
    assert.equal(err.status, 400)
    assert.equal(err.headers.get('access-control-allow-origin'), 'https://app.example.com')
    const other = await fetch(`${gw.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
    assert.equal(other.status, 204)
    assert.equal(other.headers.get('access-control-allow-origin'), null)
    const plain = await post(`${gw.url}/v1/chat/completions`, chatBody(), { origin: 'https://evil.example' })
    assert.equal(plain.headers.get('access-control-allow-origin'), null)
    await plain.text()
  })

  test('compressed request bodies are decoded: gzip, br, zstd; broken, bombs and unknown codings refused', async () => {
    const body = Buffer.from(chatBody())
    for (const [coding, bytes] of [['gzip', gzipSync(body)], ['br', brotliCompressSync(body)], ['zstd', zstdCompressSync(body)]] as const) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': coding }, body: bytes })
      assert.equal(res.status, 200, coding)
      assert.equal(((await res.json()) as { object: string }).object, 'chat.completion')
    }
    const broken = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: body })
    assert.equal(broken.status, 400)
    assert.match(((await broken.json()) as { error: { message: string } }).error.message, /gzip body could not be decoded/)
    const bomb = gzipSync(Buffer.alloc(9 * 1024 * 1024, 0x20))
    const big = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: bomb })
    assert.equal(big.status, 413)
    const bigError = ((await big.json()) as { error: { code: string; message: string } }).error
    assert.equal(bigError.code, 'GW_ERR_BODY_TOO_LARGE')
    // Decoded past the limit: refused like a large plain body.
    assert.equal(bigError.message, 'Request body exceeds the limit of 8388608 bytes')
    // A plain body over the limit: the message names the limit too.
    const plainBig = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'velox-sim-1', messages: [{ role: 'user', content: 'x'.repeat(9 * 1024 * 1024) }] }))
    assert.equal(plainBig.status, 413)
    assert.equal(((await plainBig.json()) as { error: { message: string } }).error.message, 'Request body exceeds the limit of 8388608 bytes')
    const unknown = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'compress' }, body })
    assert.equal(unknown.status, 415)
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'GW_ERR_UNSUPPORTED_ENCODING')
  })

  test('Vercel AI SDK, OpenAI provider: chat generateText with a tool, streamText', async () => {
    const openai = createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused' })
    const model = openai.chat('velox-sim-1')
    const withTool = await generateText({
      model,
      prompt: 'Weather in Oslo?',
      maxRetries: 0,
      tools: { get_weather: tool({ description: 'weather', inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }) }) },
    })
    assert.equal(withTool.finishReason, 'tool-calls')
    assert.equal(withTool.toolCalls[0]?.toolName, 'get_weather')
    const streamed = streamText({ model, prompt: 'Hello', maxRetries: 0 })
    let text = ''
    for await (const piece of streamed.textStream) text += piece
    assert.equal(text.split(' ').length, 6)
  })
})

describe('forwarded client headers', () => {
  test('traceparent, tracestate and the user agent (as x-forwarded-user-agent) by default; never credentials', async () => {
    const seen: Record<string, string | string[] | undefined>[] = []
    const up = await startRawUpstream((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.url === '/health') return res.end()
        seen.push(req.headers)
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
      })
    })
    const gw = await startGateway({ upstreams: [{ name: 'up', url: up.url, models: ['m'] }] })
    try {
      await (await post(`${gw.url}/v1/chat/completions`, '{"model":"m","messages":[]}', {
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        tracestate: 'vendor=1',
        'user-agent': 'my-app/1.0',
        authorization: 'Bearer sk-client',
        'x-api-key': 'sk-client',
        'x-custom': 'no',
      })).text()
      const h = seen[0]!
      assert.equal(h.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
      assert.equal(h.tracestate, 'vendor=1')
      assert.equal(h['x-forwarded-user-agent'], 'my-app/1.0')
      assert.notEqual(h['user-agent'], 'my-app/1.0')
      assert.equal(h.authorization, undefined)
      assert.equal(h['x-api-key'], undefined)
      assert.equal(h['x-custom'], undefined)
    } finally {
      await gw.close()
    }
    const custom = await startGateway({ upstreams: [{ name: 'up', url: up.url, models: ['m'] }], server: { forwardHeaders: ['X-Custom'] } })
    try {
      await (await post(`${custom.url}/v1/chat/completions`, '{"model":"m","messages":[]}', { 'x-custom': 'yes', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' })).text()
      assert.equal(seen[1]!['x-custom'], 'yes')
      assert.equal(seen[1]!.traceparent, undefined)
    } finally {
      await custom.close()
      await up.close()
    }
  })

  test('the config refuses to forward credentials', () => {
    assert.throws(() => parseConfig({ server: { forwardHeaders: ['Authorization'] } }), /server\.forwardHeaders.*never forwarded/s)
    assert.throws(() => parseConfig({ server: { cors: { origins: ['app.example.com'] } } }), /server\.cors\.origins\[0\]/)
  })
})
