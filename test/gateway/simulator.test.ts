import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { after, afterEach, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import OpenAI from 'openai'
import { Agent, fetch } from 'undici'
import { type Simulator, startSimulator } from '../../gateway/src/simulator/server.ts'
import { eventually } from '../helpers/eventually.ts'

const MAIN = fileURLToPath(new URL('../../gateway/src/simulator/main.ts', import.meta.url))
const MODEL = 'velox-sim-1'
const dispatcher = new Agent({ keepAliveTimeout: 1_000 })

after(() => dispatcher.close())

function chatBody(content: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }], ...extra })
}

function post(sim: Simulator, path: string, body: string, signal?: AbortSignal) {
  return fetch(sim.url + path, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher, signal })
}

const waitFor = (check: () => boolean, what: string) => eventually(check, { what })

/** Reads an SSE body, noting when each read delivered data. */
async function readStream(body: ReadableStream<Uint8Array>): Promise<{ text: string; reads: number[] }> {
  const decoder = new TextDecoder()
  const reads: number[] = []
  let text = ''
  for await (const chunk of body) {
    reads.push(performance.now())
    text += decoder.decode(chunk, { stream: true })
  }
  return { text, reads }
}

function dataEvents(text: string): string[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
}

function errorCode(err: unknown): string | undefined {
  let e: unknown = err
  while (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    e = e.cause
  }
  return undefined
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!
  return dot
}

function norm(a: ArrayLike<number>): number {
  return Math.sqrt(cosine(a, a))
}

describe('OpenAI SDK against the simulator', () => {
  let sim: Simulator
  let client: OpenAI

  before(async () => {
    sim = await startSimulator({ models: [MODEL, 'org/other-model'] })
    client = new OpenAI({ baseURL: sim.url + '/v1', apiKey: 'sk-test', maxRetries: 0 })
  })
  after(() => sim.close())

  test('chat completion: content, finish reason, usage', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hello there' }] })
    assert.equal(r.object, 'chat.completion')
    assert.equal(r.model, MODEL)
    assert.match(r.id, /^chatcmpl-/)
    assert.equal(r.choices.length, 1)
    const choice = r.choices[0]!
    assert.equal(choice.message.role, 'assistant')
    assert.equal(choice.finish_reason, 'stop')
    assert.equal(choice.message.content!.split(' ').length, 16)
    assert.equal(r.usage!.completion_tokens, 16)
    assert.ok(r.usage!.prompt_tokens > 0)
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 16)
  })

  test('chat completion honours max_tokens and max_completion_tokens with finish_reason length', async () => {
    const a = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 4 })
    assert.equal(a.choices[0]!.finish_reason, 'length')
    assert.equal(a.choices[0]!.message.content!.split(' ').length, 4)
    assert.equal(a.usage!.completion_tokens, 4)
    const b = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 2 })
    assert.equal(b.usage!.completion_tokens, 2)
    assert.equal(b.choices[0]!.finish_reason, 'length')
    const c = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 100 })
    assert.equal(c.choices[0]!.finish_reason, 'stop')
  })

  test('chat completion with n > 1 gives distinct choices', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'pick' }], n: 3 })
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2])
    assert.equal(new Set(r.choices.map((c) => c.message.content)).size, 3)
    assert.equal(r.usage!.completion_tokens, 48)
  })

  test('streamed chat: role chunk, one chunk per token, finish chunk, usage chunk; same text as non-stream', async () => {
    const messages = [{ role: 'user' as const, content: 'Stream me something' }]
    const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true, stream_options: { include_usage: true } })
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.equal(chunks.length, 1 + 16 + 1 + 1)
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id))
    assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: 'assistant', content: '', refusal: null })
    const tokens = chunks.slice(1, 17).map((c) => c.choices[0]!.delta.content)
    assert.ok(tokens.every((t) => typeof t === 'string' && t.length > 0))
    assert.equal(chunks[17]!.choices[0]!.finish_reason, 'stop')
    const usage = chunks[18]!
    assert.deepEqual(usage.choices, [])
    assert.equal(usage.usage!.completion_tokens, 16)

    const whole = await client.chat.completions.create({ model: MODEL, messages })
    assert.equal(tokens.join(''), whole.choices[0]!.message.content)
    assert.equal(usage.usage!.prompt_tokens, whole.usage!.prompt_tokens)
  })

  test('streamed chat without include_usage has no usage chunk', async () => {
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 3 })
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = []
    for await (const chunk of stream) chunks.push(chunk)
    assert.equal(chunks.length, 1 + 3 + 1)
    assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, 'length')
    assert.ok(chunks.every((c) => c.usage === undefined))
  })

  test('completions, plain and streamed', async () => {
    const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 5 })
    assert.equal(r.object, 'text_completion')
    assert.equal(r.choices[0]!.finish_reason, 'length')
    assert.equal(r.choices[0]!.text.split(' ').length, 5)
    assert.equal(r.usage!.completion_tokens, 5)

    const stream = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 5, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | undefined
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.text
        finish = c.finish_reason ?? finish
      }
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text, r.choices[0]!.text)
    assert.equal(finish, 'length')
    assert.equal(usage!.completion_tokens, 5)

    const batch = await client.completions.create({ model: MODEL, prompt: ['a', 'b'], n: 2 })
    assert.equal(batch.choices.length, 4)
  })

  test('embeddings: float and base64 agree, unit norm, dimensions honoured', async () => {
    const input = ['The quick brown fox', 'the quick brown fox!', 'Kubernetes autoscaling policy']
    const asFloat = await client.embeddings.create({ model: MODEL, input, encoding_format: 'float' })
    const asBase64 = await client.embeddings.create({ model: MODEL, input }) // the SDK asks for base64 and decodes it
    assert.equal(asFloat.data.length, 3)
    assert.equal(asFloat.usage.prompt_tokens, asFloat.usage.total_tokens)
    for (let i = 0; i < 3; i++) {
      const v = asFloat.data[i]!.embedding
      assert.equal(asFloat.data[i]!.index, i)
      assert.equal(v.length, 256)
      assert.ok(Math.abs(norm(v) - 1) < 1e-5)
      assert.deepEqual(Array.from(asBase64.data[i]!.embedding), v)
    }
    const [fox, foxAgain, other] = asFloat.data.map((d) => d.embedding)
    assert.ok(cosine(fox!, foxAgain!) > 0.85, 'same words score high')
    assert.ok(cosine(fox!, foxAgain!) < 0.9999, 'different text is not identical')
    assert.ok(Math.abs(cosine(fox!, other!)) < 0.3, 'unrelated text scores low')

    const short = await client.embeddings.create({ model: MODEL, input: input[0]!, encoding_format: 'float', dimensions: 64 })
    const prefix = short.data[0]!.embedding
    assert.equal(prefix.length, 64)
    assert.ok(Math.abs(norm(prefix) - 1) < 1e-5)
    assert.ok(cosine(prefix, fox!.slice(0, 64)) / norm(fox!.slice(0, 64)) > 0.9999, 'shortened vector is the normalised prefix')

    const tokens = await client.embeddings.create({ model: MODEL, input: [[1, 2, 3], [1, 2, 3]], encoding_format: 'float' })
    assert.deepEqual(tokens.data[0]!.embedding, tokens.data[1]!.embedding)
  })

  test('models: list and retrieve', async () => {
    const list = await client.models.list()
    assert.deepEqual(list.data.map((m) => m.id), [MODEL, 'org/other-model'])
    const one = await client.models.retrieve('org/other-model')
    assert.equal(one.id, 'org/other-model')
    assert.equal(one.object, 'model')
    await assert.rejects(client.models.retrieve('missing'), (err: unknown) => err instanceof OpenAI.NotFoundError)
  })

  test('responses API, plain and streamed', async () => {
    const r = await client.responses.create({ model: MODEL, input: 'Tell me a story', instructions: 'Be brief' })
    assert.equal(r.object, 'response')
    assert.equal(r.status, 'completed')
    assert.equal(r.output_text.split(' ').length, 16)
    assert.equal(r.usage!.output_tokens, 16)

    const stream = await client.responses.create({ model: MODEL, input: 'Tell me a story', instructions: 'Be brief', stream: true })
    const types: string[] = []
    let text = ''
    let completed: OpenAI.Responses.Response | undefined
    for await (const ev of stream) {
      types.push(ev.type)
      if (ev.type === 'response.output_text.delta') text += ev.delta
      if (ev.type === 'response.completed') completed = ev.response
    }
    assert.equal(types[0], 'response.created')
    assert.equal(types.filter((t) => t === 'response.output_text.delta').length, 16)
    assert.equal(types.at(-1), 'response.completed')
    assert.equal(text, r.output_text)
    assert.equal(completed!.output_text ?? text, text)

    const cut = await client.responses.create({ model: MODEL, input: 'x', max_output_tokens: 3 })
    assert.equal(cut.status, 'incomplete')
    assert.equal(cut.incomplete_details!.reason, 'max_output_tokens')
  })

  test('determinism: same request, same answer; different prompt or model, different answer', async () => {
    const ask = async (content: string, model = MODEL) =>
      (await client.chat.completions.create({ model, messages: [{ role: 'user', content }] })).choices[0]!.message.content
    const a = await ask('What is the capital of France?')
    assert.equal(await ask('What is the capital of France?'), a)
    assert.notEqual(await ask('What is the capital of Spain?'), a)
    assert.notEqual(await ask('What is the capital of France?', 'org/other-model'), a)
    const second = await startSimulator()
    try {
      const r = await post(second, '/v1/chat/completions', chatBody('What is the capital of France?'))
      const body = (await r.json()) as { choices: { message: { content: string } }[] }
      assert.equal(body.choices[0]!.message.content, a, 'another simulator instance answers the same')
    } finally {
      await second.close()
    }
  })
})

describe('HTTP behaviour', () => {
  let sim: Simulator

  before(async () => {
    sim = await startSimulator({ tokens: 4 })
  })
  after(() => sim.close())

  test('health, bad JSON, missing fields, unknown path, wrong method', async () => {
    const health = await fetch(sim.url + '/health', { dispatcher })
    assert.equal(health.status, 200)
    assert.deepEqual(await health.json(), { status: 'ok' })

    const bad = await post(sim, '/v1/chat/completions', '{"model":')
    assert.equal(bad.status, 400)
    const badBody = (await bad.json()) as { error: { type: string; message: string } }
    assert.equal(badBody.error.type, 'invalid_request_error')
    assert.match(badBody.error.message, /parse the JSON/)

    const noMessages = await post(sim, '/v1/chat/completions', JSON.stringify({ model: MODEL }))
    assert.equal(noMessages.status, 400)
    assert.equal(((await noMessages.json()) as { error: { param: string } }).error.param, 'messages')

    const noModel = await post(sim, '/v1/embeddings', JSON.stringify({ input: 'x' }))
    assert.equal(noModel.status, 400)
    assert.equal(((await noModel.json()) as { error: { param: string } }).error.param, 'model')

    const missing = await post(sim, '/v1/nothing', '{}')
    assert.equal(missing.status, 404)
    assert.ok(((await missing.json()) as { error: { message: string } }).error.message.includes('/v1/nothing'))

    const wrong = await fetch(sim.url + '/v1/chat/completions', { dispatcher })
    assert.equal(wrong.status, 405)
    await wrong.arrayBuffer()
  })

  test('a body that arrives in many chunks is read whole', async () => {
    const prompt = 'é'.repeat(300_000) // two bytes each: chunk boundaries split characters
    const r = await post(sim, '/v1/chat/completions', chatBody(prompt))
    assert.equal(r.status, 200)
    const body = (await r.json()) as { usage: { prompt_tokens: number } }
    assert.equal(body.usage.prompt_tokens, 300_000 / 4 + 6)
  })

  test('keep-alive: sequential requests reuse one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const reused: boolean[] = []
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = http.request(sim.url + '/v1/chat/completions', { method: 'POST', agent }, (res) => {
            assert.equal(res.headers.connection, 'keep-alive')
            res.resume()
            res.on('end', resolve)
          })
          req.on('error', reject)
          req.end(chatBody('keep me alive'))
          reused.push(req.reusedSocket)
        })
      }
      assert.deepEqual(reused, [false, true, true])
    } finally {
      agent.destroy()
    }
  })

  test('stats count requests by path and in-flight requests', async () => {
    sim.resetStats()
    await (await post(sim, '/v1/chat/completions', chatBody('a'))).arrayBuffer()
    await (await fetch(sim.url + '/v1/models', { dispatcher })).arrayBuffer()
    const s = sim.stats()
    assert.equal(s.requests, 2)
    assert.deepEqual(s.byPath, { '/v1/chat/completions': 1, '/v1/models': 1 })
    assert.equal(s.open, 0)
    const overHttp = (await (await fetch(sim.url + '/_sim/stats', { dispatcher })).json()) as { requests: number }
    assert.equal(overHttp.requests, 2, '/_sim requests are not counted')
  })

  test('ttftMs delays the non-stream body and the first chunk, not the stream headers', async () => {
    const slow = await startSimulator({ ttftMs: 500, tokens: 2 })
    try {
      let t0 = performance.now()
      await (await post(slow, '/v1/chat/completions', chatBody('x'))).arrayBuffer()
      assert.ok(performance.now() - t0 >= 495)

      // The wait is seen between the headers and the first chunk: at least half of it, whatever
      // a busy machine adds to either side.
      t0 = performance.now()
      const res = await post(slow, '/v1/chat/completions', chatBody('x', { stream: true }))
      const headersAt = performance.now()
      assert.equal(res.headers.get('content-type'), 'text/event-stream')
      const { reads } = await readStream(res.body!)
      assert.ok(reads[0]! - headersAt >= 250, `the first chunk came ${Math.round(reads[0]! - headersAt)} ms after the headers`)
      assert.ok(reads[0]! - t0 >= 495)
    } finally {
      await slow.close()
    }
  })

  test('a client that disconnects mid-stream stops generation', async () => {
    // 20,000 tokens 5 ms apart: a pacing timer that outlived the client would run for 100 s,
    // far past the wait below, so the wait cannot pass because the stream ended by itself.
    const slow = await startSimulator({ tokens: 20_000, interTokenMs: 5 })
    try {
      const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
      const timersBefore = timers()
      const ac = new AbortController()
      const res = await post(slow, '/v1/chat/completions', chatBody('long', { stream: true }), ac.signal)
      const reader = res.body!.getReader()
      await reader.read()
      assert.equal(slow.stats().open, 1)
      assert.ok(timers() > timersBefore, 'positive control: the running stream\'s pacing timer is seen')
      ac.abort()
      await waitFor(() => slow.stats().open === 0, 'open to return to 0')
      await waitFor(() => timers() <= timersBefore, `the stream's timers to be cleared (${timersBefore} before, ${timers()} now)`)
    } finally {
      await slow.close()
    }
  })
})

describe('faults', () => {
  let sim: Simulator

  before(async () => {
    sim = await startSimulator({ tokens: 5 })
  })
  afterEach(() => sim.clearFaults())
  after(() => sim.close())

  test('status with statusCount and Retry-After, then back to normal', async () => {
    sim.setFaults({ status: 503, statusCount: 2, retryAfterSeconds: 7 })
    for (let i = 0; i < 2; i++) {
      const r = await post(sim, '/v1/chat/completions', chatBody('x'))
      assert.equal(r.status, 503)
      assert.equal(r.headers.get('retry-after'), '7')
      const body = (await r.json()) as { error: { type: string; message: string } }
      assert.equal(body.error.type, 'server_error')
    }
    const ok = await post(sim, '/v1/chat/completions', chatBody('x'))
    assert.equal(ok.status, 200)
    await ok.arrayBuffer()

    sim.setFaults({ status: 429, retryAfterSeconds: 1 })
    for (let i = 0; i < 3; i++) {
      const r = await fetch(sim.url + '/v1/models', { dispatcher })
      assert.equal(r.status, 429)
      assert.equal(r.headers.get('retry-after'), '1')
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'rate_limit_exceeded')
    }
    sim.setFaults({ status: 500 })
    const r500 = await fetch(sim.url + '/v1/models', { dispatcher })
    assert.equal(r500.status, 500)
    assert.equal(r500.headers.get('retry-after'), null)
    await r500.arrayBuffer()
    const health = await fetch(sim.url + '/health', { dispatcher })
    assert.equal(health.status, 200, '/health is never faulted')
    await health.arrayBuffer()
  })

  test('faults over HTTP: POST, GET, DELETE /_sim/faults; bad keys rejected', async () => {
    const set = await post(sim, '/_sim/faults', JSON.stringify({ status: 502 }))
    assert.equal(set.status, 200)
    assert.equal(((await set.json()) as { status: number }).status, 502)
    const r = await post(sim, '/v1/chat/completions', chatBody('x'))
    assert.equal(r.status, 502)
    await r.arrayBuffer()

    const bad = await post(sim, '/_sim/faults', JSON.stringify({ stauts: 500 }))
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /unknown fault "stauts"/)
    assert.throws(() => sim.setFaults({ resetAfterChunks: -1 }), TypeError)

    const cleared = await fetch(sim.url + '/_sim/faults', { method: 'DELETE', dispatcher })
    assert.equal(((await cleared.json()) as { status: number | null }).status, null)
    const ok = await post(sim, '/v1/chat/completions', chatBody('x'))
    assert.equal(ok.status, 200)
    await ok.arrayBuffer()
  })

  test('resetBeforeHeaders: the connection is reset without a response', async () => {
    sim.setFaults({ resetBeforeHeaders: true })
    await assert.rejects(post(sim, '/v1/chat/completions', chatBody('x')), (err: unknown) => {
      assert.ok(['ECONNRESET', 'UND_ERR_SOCKET'].includes(errorCode(err)!), `unexpected ${String(errorCode(err))}`)
      return true
    })
    await waitFor(() => sim.stats().open === 0, 'open to return to 0')
  })

  test('stallBeforeHeadersMs delays the headers', async () => {
    sim.setFaults({ stallBeforeHeadersMs: 200 })
    const t0 = performance.now()
    const r = await post(sim, '/v1/chat/completions', chatBody('x'))
    assert.ok(performance.now() - t0 >= 195)
    assert.equal(r.status, 200)
    await r.arrayBuffer()
  })

  test('stallAfterHeadersMs sends headers, then waits before the first chunk', async () => {
    // The wait is seen between the headers and the first chunk (a stall before the headers would
    // bring both together): at least half of it, whatever a busy machine adds to either side.
    sim.setFaults({ stallAfterHeadersMs: 500 })
    const t0 = performance.now()
    const r = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }))
    const headersAt = performance.now()
    const { reads, text } = await readStream(r.body!)
    assert.ok(reads[0]! - headersAt >= 250, `the first chunk came ${Math.round(reads[0]! - headersAt)} ms after the headers`)
    assert.ok(reads[0]! - t0 >= 495)
    assert.equal(dataEvents(text).at(-1), '[DONE]')

    const t1 = performance.now()
    const plain = await post(sim, '/v1/chat/completions', chatBody('x'))
    const plainHeadersAt = performance.now()
    const body = (await plain.json()) as { object: string }
    assert.ok(performance.now() - plainHeadersAt >= 250, `the body came ${Math.round(performance.now() - plainHeadersAt)} ms after the headers`)
    assert.ok(performance.now() - t1 >= 495, 'a non-stream body waits too')
    assert.equal(body.object, 'chat.completion')
  })

  test('resetAfterChunks: the client gets N events, then a broken stream', async () => {
    sim.setFaults({ resetAfterChunks: 3 })
    const r = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }))
    assert.equal(r.status, 200)
    const decoder = new TextDecoder()
    let text = ''
    await assert.rejects(async () => {
      for await (const chunk of r.body!) text += decoder.decode(chunk, { stream: true })
    })
    assert.equal(dataEvents(text).length, 3)

    const plain = await post(sim, '/v1/chat/completions', chatBody('x'))
    assert.equal(plain.status, 200)
    await assert.rejects(plain.text(), 'a non-stream body is cut short too')
    await waitFor(() => sim.stats().open === 0, 'open to return to 0')
  })

  test('hangAfterChunks: N events, then silence until the client leaves', async () => {
    // Its own simulator: 1,000 tokens 20 ms apart, each written by a timer. A stream that went on
    // past the hang would keep a timer pending for 20 s, longer than the wait below.
    const paced = await startSimulator({ tokens: 1_000, interTokenMs: 20 })
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const before = timers()
    const ac = new AbortController()
    try {
      paced.setFaults({ hangAfterChunks: 2 })
      const r = await post(paced, '/v1/chat/completions', chatBody('x', { stream: true }), ac.signal)
      const reader = r.body!.getReader()
      const decoder = new TextDecoder()
      let text = ''
      let pacedBySomeTimer = false
      while (dataEvents(text).length < 2) {
        const { value, done } = await reader.read()
        assert.ok(!done)
        text += decoder.decode(value, { stream: true })
        pacedBySomeTimer ||= timers() > before
      }
      assert.ok(pacedBySomeTimer, 'positive control: the timer pacing the stream is seen')
      let settled = false
      const next = reader.read().finally(() => (settled = true))
      // Silent for good: nothing is scheduled that could write to the stream, and it is still open.
      await waitFor(() => timers() <= before, 'the stream to stop scheduling writes')
      assert.equal(settled, false, 'a read completed after the hang')
      assert.equal(dataEvents(text).length, 2)
      assert.equal(paced.stats().open, 1)
      ac.abort()
      await next.catch(() => {})
      await waitFor(() => paced.stats().open === 0, 'open to return to 0')
    } finally {
      ac.abort()
      await paced.close()
    }
  })

  test('with N = 0, reset and hang still send the 200 headers first', async () => {
    sim.setFaults({ resetAfterChunks: 0 })
    const reset = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }))
    assert.equal(reset.status, 200)
    await assert.rejects(reset.text())

    sim.setFaults({ resetAfterChunks: null, hangAfterChunks: 0 })
    const ac = new AbortController()
    const hung = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }), ac.signal)
    assert.equal(hung.status, 200)
    assert.equal(hung.headers.get('content-type'), 'text/event-stream')
    ac.abort()
    await hung.text().catch(() => {})
    await waitFor(() => sim.stats().open === 0, 'open to return to 0')
  })

  test('errorEventFirst: a 200 stream whose only event is an error', async () => {
    sim.setFaults({ errorEventFirst: true })
    const r = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }))
    assert.equal(r.status, 200)
    const events = dataEvents((await readStream(r.body!)).text)
    assert.equal(events.length, 1)
    const parsed = JSON.parse(events[0]!) as { error: { type: string } }
    assert.equal(parsed.error.type, 'server_error')

    const client = new OpenAI({ baseURL: sim.url + '/v1', apiKey: 'sk-test', maxRetries: 0 })
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], stream: true })
    await assert.rejects(async () => {
      for await (const _ of stream) { /* drain */ }
    }, (err: unknown) => err instanceof OpenAI.APIError)
  })

  test('interTokenMs fault paces tokens, each in its own write', async () => {
    sim.setFaults({ interTokenMs: 40 })
    const t0 = performance.now()
    const r = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }))
    const { text, reads } = await readStream(r.body!)
    const elapsed = performance.now() - t0
    assert.equal(dataEvents(text).length, 1 + 5 + 1 + 1)
    assert.ok(elapsed >= 4 * 40 - 5, `stream took ${elapsed} ms`)
    assert.ok(reads.length >= 5, `tokens arrived in ${reads.length} reads`)
  })

  test('stopAccepting refuses connections and drops open ones; resumeAccepting listens on the same port', async () => {
    sim.setFaults({ hangAfterChunks: 1 })
    const hanging = await post(sim, '/v1/chat/completions', chatBody('x', { stream: true }))
    const drained = readStream(hanging.body!)
    sim.clearFaults()

    await sim.stopAccepting()
    await assert.rejects(drained, 'the open stream is destroyed')
    await assert.rejects(fetch(sim.url + '/health', { dispatcher }), (err: unknown) => errorCode(err) === 'ECONNREFUSED')
    assert.equal(sim.stats().open, 0)

    const port = sim.port
    await sim.resumeAccepting()
    assert.equal(sim.port, port)
    const r = await post(sim, '/v1/chat/completions', chatBody('x'))
    assert.equal(r.status, 200)
    await r.arrayBuffer()
  })
})

test('CLI: prints one listening line, serves, exits 0 on SIGTERM', async () => {
  const child = spawn(process.execPath, [MAIN, '--port', '0', '--tokens', '3', '--models', 'a,b'], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const lines = createInterface({ input: child.stdout })
    const [first] = (await Promise.race([
      new Promise<string[]>((resolve) => lines.once('line', (l) => resolve([l]))),
      sleep(10_000, undefined, { ref: false }).then(() => assert.fail('no listening line')),
    ]))
    const msg = JSON.parse(first!) as { event: string; url: string }
    assert.equal(msg.event, 'listening')
    assert.match(msg.url, /^http:\/\/127\.0\.0\.1:\d+$/)

    const models = (await (await fetch(msg.url + '/v1/models', { dispatcher })).json()) as { data: { id: string }[] }
    assert.deepEqual(models.data.map((m) => m.id), ['a', 'b'])
    const chat = (await (await fetch(msg.url + '/v1/chat/completions', { method: 'POST', body: chatBody('hi'), dispatcher })).json()) as {
      usage: { completion_tokens: number }
    }
    assert.equal(chat.usage.completion_tokens, 3)

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})
