import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, readEvents, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'
import { eventually } from '../helpers/eventually.ts'

describe('proxying to one upstream', () => {
  let sim: Simulator
  let gw: TestGateway
  before(async () => {
    sim = await startSimulator({ tokens: 5 })
    gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'], pool: { warm: 2 } }] })
  })
  after(async () => {
    await gw.close()
    await sim.close()
  })

  test('a chat completion comes back as the simulator wrote it, with timing headers', async () => {
    const direct = (await (await post(`${sim.url}/v1/chat/completions`, chatBody())).json()) as { choices: unknown; usage: unknown }
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('x-velox-upstream'), 'sim')
    assert.match(res.headers.get('server-timing') ?? '', /^gw;dur=\d+\.\d{3}, upstream;dur=\d+\.\d{3}$/)
    const body = (await res.json()) as typeof direct
    assert.deepEqual(body.choices, direct.choices)
    assert.deepEqual(body.usage, direct.usage)
  })

  test('streams arrive event by event, not coalesced, with proxy-safe headers', async () => {
    sim.setFaults({ interTokenMs: 40 })
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true, stream_options: { include_usage: true } }))
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
      assert.equal(res.headers.get('x-accel-buffering'), 'no')
      assert.equal(res.headers.get('cache-control'), 'no-cache')
      const { events, times } = await readEvents(res)
      assert.equal(events.at(-1), 'data: [DONE]')
      const contentEvents = events.filter((e) => e.includes('"content":"') && !e.includes('"content":""'))
      assert.equal(contentEvents.length, 5)
      // Each token was held 40 ms by the simulator; a buffering proxy would deliver them together.
      const firstToken = events.findIndex((e) => e === contentEvents[0])
      const lastToken = events.findIndex((e) => e === contentEvents[4])
      assert.ok(times[lastToken]! - times[firstToken]! >= 120, `tokens arrived within ${times[lastToken]! - times[firstToken]!} ms`)
    } finally {
      sim.clearFaults()
    }
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    assert.match(metrics, /velox_tokens_total\{model="velox-sim-1",kind="completion"\} \d+/)
    assert.match(metrics, /velox_requests_total\{route="chat.completions",model="velox-sim-1",upstream="sim",status="200"\} \d+/)
    assert.match(metrics, /velox_gateway_added_seconds_bucket\{le="0.0001",route="chat.completions"\} \d+/)
  })

  test('completions, embeddings and responses are forwarded too', async () => {
    for (const [path, body] of [
      ['/v1/completions', { model: 'velox-sim-1', prompt: 'hi' }],
      ['/v1/embeddings', { model: 'velox-sim-1', input: 'hi' }],
      ['/v1/responses', { model: 'velox-sim-1', input: 'hi' }],
    ] as const) {
      const res = await post(gw.url + path, JSON.stringify(body))
      assert.equal(res.status, 200, path)
      const json = (await res.json()) as { object: string }
      assert.ok(json.object, path)
    }
  })

  test('bad requests get OpenAI-shaped errors with stable codes', async () => {
    const cases: Array<[string, RequestInit, number, string]> = [
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' }, 400, 'GW_ERR_INVALID_JSON'],
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' }, 400, 'GW_ERR_INVALID_JSON'],
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"messages":[]}' }, 400, 'GW_ERR_MODEL_REQUIRED'],
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"nope"}' }, 404, 'GW_ERR_MODEL_NOT_FOUND'],
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"velox-sim-1","stream":"yes"}' }, 400, 'GW_ERR_INVALID_BODY'],
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' }, 415, 'GW_ERR_UNSUPPORTED_MEDIA_TYPE'],
      ['/v1/chat/completions', { method: 'GET' }, 405, 'GW_ERR_METHOD_NOT_ALLOWED'],
      ['/v2/nothing', { method: 'GET' }, 404, 'GW_ERR_NOT_FOUND'],
    ]
    for (const [path, init, status, code] of cases) {
      const res = await fetch(gw.url + path, init)
      assert.equal(res.status, status, `${path} ${String(init.body)}`)
      const body = (await res.json()) as { error: { code: string; message: string; type: string } }
      assert.equal(body.error.code, code)
      assert.equal(typeof body.error.message, 'string')
      assert.equal(typeof body.error.type, 'string')
    }
  })

  test('/v1/models lists configured models in OpenAI shape; /healthz and /readyz answer', async () => {
    const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as { object: string; data: Array<{ id: string; object: string }> }
    assert.equal(models.object, 'list')
    assert.deepEqual(models.data.map((m) => [m.id, m.object]), [['velox-sim-1', 'model']])
    assert.equal((await fetch(`${gw.url}/v1/models/velox-sim-1`)).status, 200)
    assert.equal((await fetch(`${gw.url}/v1/models/other`)).status, 404)
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200)
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 200)
  })

  test('a client that goes away mid-stream cancels the upstream request', async () => {
    sim.setFaults({ interTokenMs: 50 })
    try {
      const ac = new AbortController()
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true }), {})
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      assert.ok(sim.stats().open >= 1)
      await reader.cancel()
      ac.abort()
      await eventually(() => sim.stats().open === 0, { what: 'the simulator to stop generating for a client that left', intervalMs: 10 })
    } finally {
      sim.clearFaults()
    }
  })
})

describe('bodies and credentials', () => {
  test('the original bytes are forwarded; client credentials never are, upstream credentials are injected', async () => {
    let seen: { body: string; auth: string | undefined; cookie: string | undefined; requestId: string | undefined } | null = null
    const up = await startRawUpstream((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (req.url === '/health') return res.end()
        seen = { body: Buffer.concat(chunks).toString(), auth: req.headers.authorization, cookie: req.headers.cookie, requestId: req.headers['x-request-id'] as string }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
      })
    })
    const gw = await startGateway({ upstreams: [{ name: 'up', url: `${up.url}/`, models: ['m'], apiKeyEnv: 'TEST_UPSTREAM_KEY' }] }, { TEST_UPSTREAM_KEY: 'sk-upstream' })
    try {
      const weird = '{ "model" : "m",\n  "messages": [ {"role":"user","content":"h\\u00e9llo"} ], "zz": 1.50 }'
      const res = await post(`${gw.url}/v1/chat/completions`, weird, { authorization: 'Bearer sk-client', cookie: 'session=1', 'x-request-id': 'req-42' })
      assert.equal(res.status, 200)
      assert.equal(await res.text(), '{"ok":true}')
      assert.ok(seen)
      const s = seen as { body: string; auth: string | undefined; cookie: string | undefined; requestId: string | undefined }
      assert.equal(s.body, weird)
      assert.equal(s.auth, 'Bearer sk-upstream')
      assert.equal(s.cookie, undefined)
      assert.equal(s.requestId, 'req-42')
    } finally {
      await gw.close()
      await up.close()
    }
  })

  test('a body over the limit gets 413', async () => {
    const sim = await startSimulator()
    const gw = await startGateway({ server: { bodyLimit: 1024 }, upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }] })
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ pad: 'x'.repeat(2048) }))
      assert.equal(res.status, 413)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_BODY_TOO_LARGE')
    } finally {
      await gw.close()
      await sim.close()
    }
  })
})

describe('upstream failures', () => {
  test('an upstream error status passes through with its body', async () => {
    const sim = await startSimulator()
    const gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }] })
    try {
      sim.setFaults({ status: 500 })
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
      assert.equal(res.status, 500)
      const body = (await res.json()) as { error: { message: string } }
      assert.ok(body.error.message)
      sim.setFaults({ status: 400 })
      const bad = await post(`${gw.url}/v1/chat/completions`, chatBody())
      assert.equal(bad.status, 400)
    } finally {
      await gw.close()
      await sim.close()
    }
  })

  test('a 5xx, a refused connection or an error event fails over to another upstream before the first byte', async () => {
    const broken = await startSimulator()
    const healthy = await startSimulator()
    const gw = await startGateway({
      upstreams: [
        { name: 'broken', url: broken.url, models: ['*'], pool: { warm: 0 } },
        { name: 'healthy', url: healthy.url, models: ['*'], pool: { warm: 0 } },
      ],
    })
    try {
      for (const faults of [{ status: 503 }, { errorEventFirst: true }, { resetBeforeHeaders: true }]) {
        broken.setFaults(faults)
        for (let i = 0; i < 6; i++) {
          // An error event can only be the first event of a stream.
          const stream = 'errorEventFirst' in faults || i % 2 === 0
          const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream }))
          assert.equal(res.status, 200, JSON.stringify(faults))
          assert.equal(res.headers.get('x-velox-upstream'), 'healthy')
          const text = await res.text()
          assert.ok(!text.includes('"error"'), `${JSON.stringify(faults)} leaked an error: ${text}`)
        }
        broken.clearFaults()
      }
      await broken.stopAccepting()
      for (let i = 0; i < 4; i++) {
        const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
        assert.equal(res.status, 200)
        await res.text()
      }
    } finally {
      await gw.close()
      await broken.close()
      await healthy.close()
    }
  })

  test('an unreachable upstream gives 502; a late one 504', { timeout: 20_000 }, async () => {
    const sim = await startSimulator()
    const gw = await startGateway({
      upstreams: [
        { name: 'gone', url: 'http://127.0.0.1:9', models: ['gone'], pool: { warm: 0 } },
        { name: 'slow', url: sim.url, models: ['slow'], timeouts: { firstByteMs: 300 } },
      ],
    })
    try {
      let res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'gone' }))
      assert.equal(res.status, 502)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_UNAVAILABLE')
      // A 30 s stall: only the 300 ms first-byte timeout can answer this request with a 504 (no wall-clock bound needed).
      sim.setFaults({ stallBeforeHeadersMs: 30_000 })
      res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'slow' }))
      assert.equal(res.status, 504)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_TIMEOUT')
    } finally {
      sim.clearFaults()
      await gw.close()
      await sim.close()
    }
  })

  test('a stream whose upstream dies mid-way ends with an SSE error event, never a silent [DONE]', { timeout: 20_000 }, async () => {
    const sim = await startSimulator({ tokens: 20 })
    const gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'], timeouts: { idleMs: 300 } }] })
    try {
      sim.setFaults({ resetAfterChunks: 3 })
      let { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true })))
      assert.ok(events.length >= 2)
      assert.ok(!events.includes('data: [DONE]'))
      assert.match(events.at(-1)!, /"code":"GW_ERR_UPSTREAM_STREAM_BROKEN"/)

      // The upstream hangs for good: the stream ends only because the gateway's idle timeout ends it.
      sim.setFaults({ resetAfterChunks: null, hangAfterChunks: 3 })
      ;({ events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true }))))
      assert.match(events.at(-1)!, /"code":"GW_ERR_UPSTREAM_STREAM_BROKEN"|"code":"GW_ERR_UPSTREAM_IDLE_TIMEOUT"/)
    } finally {
      sim.clearFaults()
      await gw.close()
      await sim.close()
    }
  })

  test('a non-streamed body cut short is never delivered as a complete success', async () => {
    const up = await startRawUpstream((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.url === '/health') return res.end()
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
        res.write('{"choices":[{"message":')
        setTimeout(() => res.socket?.destroy(), 20)
      })
    })
    const gw = await startGateway({ upstreams: [{ name: 'up', url: up.url, models: ['*'] }] })
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
      await assert.rejects(res.text())
    } finally {
      await gw.close()
      await up.close()
    }
  })
})

describe('requests counted by what the client saw', () => {
  /**
   * velox_requests_total{status} counts what the client saw: a stream that broke after its 200
   * went out is a 200 there, and the failure is counted on its own in velox_responses_broken_total,
   * so an operator's error rate still sees every stream that breaks.
   */
  let sim: Simulator
  let gw: TestGateway

  before(async () => {
    // Both models are listed by the simulator at warm-up, so each keeps its own label.
    sim = await startSimulator({ tokens: 20, interTokenMs: 5, models: ['clean', 'broken'] })
    gw = await startGateway({
      log: { level: 'silent' },
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 }, timeouts: { idleMs: 200 } }],
      routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
      cache: { enabled: false },
    })
  })

  after(async () => {
    await gw.close()
    await sim.close()
  })

  const body = (model: string, stream: boolean) => JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] })

  async function samples(model: string): Promise<Map<string, number>> {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    const out = new Map<string, number>()
    for (const line of text.split('\n')) {
      const m = /^velox_requests_total\{([^}]*)\} (\d+)/.exec(line)
      if (m === null || !m[1]!.includes(`model="${model}"`)) continue
      const status = /status="(\d+)"/.exec(m[1]!)![1]!
      out.set(status, (out.get(status) ?? 0) + Number(m[2]))
    }
    return out
  }

  test('control: a clean stream is counted as 200', async () => {
    const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body('clean', true)))
    assert.equal(events.at(-1), 'data: [DONE]')
    assert.deepEqual([...(await samples('clean'))], [['200', 1]])
  })

  async function broken(): Promise<Map<string, number>> {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    const out = new Map<string, number>()
    for (const m of text.matchAll(/^velox_responses_broken_total\{[^}]*code="([^"]+)"[^}]*\} (\d+)/gm)) out.set(m[1]!, Number(m[2]))
    return out
  }

  test('a stream that broke mid-way counts as the 200 the client got, and as broken; a body that never came as its error', async () => {
    sim.setFaults({ resetAfterChunks: 2 })
    try {
      const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body('broken', true)))
      assert.match(events.at(-1)!, /GW_ERR_UPSTREAM_STREAM_BROKEN/)
    } finally {
      sim.clearFaults()
    }
    sim.setFaults({ hangAfterChunks: 2 })
    try {
      const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body('broken', true)))
      assert.match(events.at(-1)!, /GW_ERR_UPSTREAM_IDLE_TIMEOUT/)
    } finally {
      sim.clearFaults()
    }
    // A non-streamed answer whose body never comes: nothing reached the client, so it gets a 504.
    sim.setFaults({ stallAfterHeadersMs: 5_000 })
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, body('broken', false))
      assert.equal(res.status, 504)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_IDLE_TIMEOUT')
    } finally {
      sim.clearFaults()
    }
    assert.deepEqual([...(await samples('broken'))].sort(), [['200', 2], ['504', 1]])
    assert.deepEqual([...(await broken())].sort(), [['GW_ERR_UPSTREAM_IDLE_TIMEOUT', 1], ['GW_ERR_UPSTREAM_STREAM_BROKEN', 1]])
    // The clean stream of the control test broke nothing.
    assert.deepEqual([...(await samples('clean'))], [['200', 1]])
  })
})
