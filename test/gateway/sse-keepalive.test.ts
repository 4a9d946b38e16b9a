/**
 * SSE keep-alive while a stream waits for its first token (server.sseKeepAliveMs): a real gateway
 * in front of a vLLM-mode simulator whose prefill takes far longer than the keep-alive delay, the
 * official OpenAI SDK reading through the comments, and raw upstreams for what happens to failover
 * once the comments have started.
 */
import assert from 'node:assert/strict'
import type http from 'node:http'
import { after, before, describe, test } from 'node:test'
import OpenAI from 'openai'
import { type Simulator, startSimulator } from '../../gateway/src/simulator/server.ts'
import { post, readEvents, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'

const KEEP_ALIVE_MS = 100
/** ~3,000 prompt tokens at 0.25 simulated ms each: a first token ~750 ms after the request. */
const LONG_PROMPT = 'Summarise the maintenance history of every bicycle in the shop. '.repeat(190)
const body = (extra: Record<string, unknown> = {}): string => JSON.stringify({ model: 'llm', messages: [{ role: 'user', content: LONG_PROMPT }], stream: true, max_tokens: 4, ...extra })

describe('keep-alive comments through a long prefill', () => {
  let sim: Simulator
  let kept: TestGateway
  let plain: TestGateway
  before(async () => {
    sim = await startSimulator({ models: ['llm'], tokens: 4, vllm: { prefillMsPerToken: 0.25, stepMs: 1, maxBatchedTokens: 8192, kvBlocks: 4096 } })
    const upstreams = [{ name: 'pod', url: sim.url, models: ['llm'] }]
    kept = await startGateway({ upstreams, cache: { enabled: false }, server: { sseKeepAliveMs: KEEP_ALIVE_MS }, routing: { health: { intervalMs: 0 } } })
    plain = await startGateway({ upstreams, cache: { enabled: false }, routing: { health: { intervalMs: 0 } } })
  })
  after(async () => {
    await Promise.all([kept.close(), plain.close()])
    await sim.close()
  })

  test('headers and comments come while the pod prefills; the first token follows on the same stream', async () => {
    // A different prompt per request, so the pod's prefix cache never shortens the prefill.
    const sent = performance.now()
    const res = await post(`${kept.url}/v1/chat/completions`, body({ user: 'a', messages: [{ role: 'user', content: 'a ' + LONG_PROMPT }] }))
    const headersAt = performance.now()
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    const { events, times } = await readEvents(res)
    const firstData = events.findIndex((e) => e.startsWith('data:'))
    assert.ok(firstData >= 1, `comments before the first event: ${JSON.stringify(events.slice(0, 3))}`)
    for (const e of events.slice(0, firstData)) assert.equal(e, ': keep-alive')
    assert.ok(times[0]! - sent >= KEEP_ALIVE_MS - 5, `the first comment waits for the delay (${Math.round(times[0]! - sent)} ms)`)
    assert.ok(headersAt < times[firstData]!, 'the headers were not held until the first token')
    assert.ok(times[firstData]! - sent > 3 * KEEP_ALIVE_MS, `the prefill is long enough to need them (${Math.round(times[firstData]! - sent)} ms)`)
    assert.equal(events.at(-1), 'data: [DONE]')
  })

  test('the official SDK reads the stream as usual', async () => {
    const client = new OpenAI({ baseURL: `${kept.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const stream = await client.chat.completions.create({ model: 'llm', stream: true, max_tokens: 4, messages: [{ role: 'user', content: 'b ' + LONG_PROMPT }] })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    assert.ok(text.length > 0)
  })

  test('off by default: nothing before the first event', async () => {
    const res = await post(`${plain.url}/v1/chat/completions`, body({ messages: [{ role: 'user', content: 'c ' + LONG_PROMPT }] }))
    const { events } = await readEvents(res)
    assert.ok(events[0]!.startsWith('data:'), events[0])
    assert.ok(!events.some((e) => e.startsWith(':')))
  })
})

/**
 * Two upstream names on one raw server, so a failover is a second request to it. Its first
 * request answers 200 event-stream headers at once and then what `first` does; later ones stream
 * a normal answer.
 */
async function stallingUpstream(first: (res: http.ServerResponse) => void) {
  let requests = 0
  const raw = await startRawUpstream((req, res) => {
    req.resume()
    if (req.method !== 'POST') return res.end() // warm-up probes
    requests++
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.flushHeaders()
    if (requests === 1) return first(res)
    res.end('data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"fine"}}]}\n\ndata: [DONE]\n\n')
  })
  return { raw, requests: () => requests }
}

async function gatewayFor(url: string, keepAliveMs: number, firstByteMs = 60_000): Promise<TestGateway> {
  const upstreams = ['a', 'b'].map((name) => ({ name, url, models: ['llm'], timeouts: { firstByteMs } }))
  return startGateway({ upstreams, cache: { enabled: false }, server: { sseKeepAliveMs: keepAliveMs }, routing: { balancer: 'weighted-round-robin', retry: { maxAttempts: 2 }, health: { intervalMs: 0 } } })
}

describe('keep-alive ends failover', () => {
  test('an error as the first event after the comments ends the stream with it; without comments it fails over', async () => {
    // The raw upstream sends its error event only once the client has read a comment.
    let release: () => void = () => undefined
    const commentSeen = new Promise<void>((resolve) => (release = resolve))
    const error = 'data: {"error":{"message":"engine died","type":"server_error"}}\n\n'
    const upstream = await stallingUpstream((res) => void commentSeen.then(() => res.end(error)))
    const gw = await gatewayFor(upstream.raw.url, KEEP_ALIVE_MS)
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, body())
      assert.equal(res.status, 200)
      const events: string[] = []
      const decoder = new TextDecoder()
      let text = ''
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true })
        if (text.startsWith(': keep-alive\n\n')) release()
      }
      events.push(...text.split('\n\n').filter((e) => e !== ''))
      assert.equal(events[0], ': keep-alive')
      assert.equal(events.at(-1), error.trim(), 'the upstream error event ends the stream')
      assert.equal(upstream.requests(), 1, 'no second member was tried')
    } finally {
      await gw.close()
      await upstream.raw.close()
    }

    const before = await stallingUpstream((res) => res.end(error))
    const off = await gatewayFor(before.raw.url, 0)
    try {
      const { events } = await readEvents(await post(`${off.url}/v1/chat/completions`, body()))
      assert.match(events[0]!, /"fine"/, 'before any byte went out, the error event failed over')
      assert.equal(before.requests(), 2)
    } finally {
      await off.close()
      await before.raw.close()
    }
  })

  test('a stream that never sends its first event ends with the first-byte timeout as an SSE error event', async () => {
    const upstream = await stallingUpstream(() => undefined)
    const gw = await gatewayFor(upstream.raw.url, KEEP_ALIVE_MS, 400)
    try {
      const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body()))
      assert.equal(events[0], ': keep-alive')
      assert.match(events.at(-1)!, /^data: \{"error":.*"GW_ERR_UPSTREAM_TIMEOUT"/)
      assert.equal(upstream.requests(), 1)
    } finally {
      await gw.close()
      await upstream.raw.close()
    }
  })
})
