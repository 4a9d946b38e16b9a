/**
 * Routing around slow and broken upstreams, end to end: real simulator processes with injected
 * faults behind a real gateway.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator, type Faults } from '../../gateway/src/simulator/server.ts'
import type { GatewayConfigInput } from '../../gateway/src/config/schema.ts'
import { chatBody, post, readEvents, startGateway, type TestGateway, startRawUpstream } from '../helpers/gateway.ts'
import net from 'node:net'
import { once } from 'node:events'
import { eventually } from '../helpers/eventually.ts'

const upstreams = (sims: Simulator[], extra: Record<string, unknown> = {}) =>
  sims.map((s, i) => ({ name: `u${i}`, url: s.url, models: ['*'], pool: { warm: 1 }, ...extra }))

async function call(gw: TestGateway, stream: boolean): Promise<{ status: number; upstream: string | null; text: string }> {
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream }))
  const text = await res.text()
  return { status: res.status, upstream: res.headers.get('x-velox-upstream'), text }
}

describe('no client sees an error while a healthy upstream exists and nothing was sent yet', () => {
  let sims: Simulator[]
  let gw: TestGateway
  before(async () => {
    sims = await Promise.all([startSimulator(), startSimulator(), startSimulator()])
    // The healthy upstream must answer within firstByteMs too: 1 s leaves a busy machine room
    // (300 ms did not at load 35), and the stalls below last five times longer.
    gw = await startGateway({
      upstreams: upstreams(sims, { timeouts: { firstByteMs: 1_000 } }),
      routing: { retry: { maxAttempts: 3, budgetMinPerSecond: 1000 }, health: { intervalMs: 0 } },
    })
  })
  after(async () => {
    await gw.close()
    await Promise.all(sims.map((s) => s.close()))
  })

  const faults: Array<[string, Partial<Faults>]> = [
    ['500 burst', { status: 500 }],
    ['429 burst', { status: 429, retryAfterSeconds: 1 }],
    ['reset before headers', { resetBeforeHeaders: true }],
    ['stall before headers', { stallBeforeHeadersMs: 5000 }],
    ['stall before the first token', { stallAfterHeadersMs: 5000 }],
    ['error event first', { errorEventFirst: true }],
  ]
  for (const [name, fault] of faults) {
    test(name, async () => {
      sims[0]!.setFaults(fault)
      sims[1]!.setFaults(fault)
      try {
        for (let i = 0; i < 8; i++) {
          const r = await call(gw, i % 2 === 0 || 'errorEventFirst' in fault || 'stallAfterHeadersMs' in fault)
          assert.equal(r.status, 200, `${name}: ${r.text.slice(0, 200)}`)
          assert.equal(r.upstream, 'u2')
          assert.ok(!r.text.includes('"error"'), `${name} leaked: ${r.text.slice(0, 200)}`)
        }
      } finally {
        sims[0]!.clearFaults()
        sims[1]!.clearFaults()
      }
    })
  }

  test('refused connections', async () => {
    await sims[0]!.stopAccepting()
    try {
      for (let i = 0; i < 6; i++) assert.equal((await call(gw, false)).status, 200)
    } finally {
      await sims[0]!.resumeAccepting()
    }
  })
})

describe('failures that cannot be hidden', () => {
  test('a stream dying mid-way ends promptly with an error event; a total deadline too', async () => {
    const sim = await startSimulator({ tokens: 30 })
    // One simulator behind two upstreams, one deadline each: `hang` ends only through its idle
    // deadline (400 ms), `slow` only through its total one (1 s; its 100 ms token gaps are far
    // under its idle deadline, however busy the machine).
    const gw = await startGateway({
      upstreams: [
        { name: 'idle', url: sim.url, models: ['hang'], pool: { warm: 1 }, timeouts: { idleMs: 400, totalMs: 60_000 } },
        { name: 'total', url: sim.url, models: ['slow'], pool: { warm: 1 }, timeouts: { idleMs: 30_000, totalMs: 1000 } },
      ],
      routing: { health: { intervalMs: 0 } },
    })
    try {
      // A hang for good, then a 3 s stream (30 tokens 100 ms apart): each ends early only through
      // the gateway's idle or total deadline, and says which; no wall-clock bound.
      sim.setFaults({ hangAfterChunks: 2 })
      let { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'hang', stream: true })))
      assert.match(events.at(-1)!, /GW_ERR_UPSTREAM_IDLE_TIMEOUT/)
      sim.setFaults({ hangAfterChunks: null, interTokenMs: 100 })
      ;({ events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'slow', stream: true }))))
      assert.match(events.at(-1)!, /GW_ERR_UPSTREAM_TOTAL_TIMEOUT/)
      assert.ok(events.length < 30, `${events.length} events: the stream ran to its end`)
    } finally {
      await gw.close()
      await sim.close()
    }
  })

  test('every member broken: 503 with Retry-After once the breakers open, and retries stay within budget', async () => {
    const sims = await Promise.all([startSimulator(), startSimulator()])
    const gw = await startGateway({
      upstreams: upstreams(sims),
      routing: { retry: { maxAttempts: 3, budgetRatio: 0.1, budgetMinPerSecond: 1 }, outlier: { consecutiveFailures: 1000 }, health: { intervalMs: 0 } },
    })
    try {
      for (const s of sims) s.setFaults({ status: 500 })
      const n = 200
      const started = performance.now()
      for (let i = 0; i < n; i++) assert.equal((await call(gw, false)).status, 500)
      const seconds = (performance.now() - started) / 1000
      const upstreamRequests = sims.reduce((sum, s) => sum + s.stats().byPath['/v1/chat/completions']!, 0)
      // The budget: ratio 0.1 of the requests + the reserve, minPerSecond x the budget's 10 s
      // window (10 retries), once more for every window the run outlasts (a loaded machine runs
      // longer); far below the 3x of naive retries.
      const budget = n * 0.1 + 10 * (1 + Math.floor(seconds / 10))
      assert.ok(upstreamRequests <= n + budget, `${upstreamRequests} upstream requests for ${n} client requests in ${seconds.toFixed(1)} s`)
      assert.ok(upstreamRequests < n * 2, `${upstreamRequests} upstream requests for ${n} client requests: not far below naive retries`)
      assert.ok(upstreamRequests > n, 'no retry at all was sent')
    } finally {
      await gw.close()
      await Promise.all(sims.map((s) => s.close()))
    }
  })

  test('ejected members: 503 GW_ERR_NO_HEALTHY_UPSTREAM with Retry-After', async () => {
    const sim = await startSimulator()
    const gw = await startGateway({
      upstreams: upstreams([sim]),
      routing: { retry: { maxAttempts: 1 }, outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000 }, health: { intervalMs: 0 } },
    })
    try {
      sim.setFaults({ status: 503 })
      await call(gw, false)
      await call(gw, false)
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
      assert.equal(res.status, 503)
      assert.equal(res.headers.get('retry-after'), '1')
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_NO_HEALTHY_UPSTREAM')
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 503)
    } finally {
      await gw.close()
      await sim.close()
    }
  })
})

describe('latency-aware routing', () => {
  test('load shifts away from a slow upstream within seconds', async () => {
    const sims = await Promise.all([startSimulator(), startSimulator(), startSimulator(), startSimulator()])
    const gw = await startGateway({ upstreams: upstreams(sims), routing: { health: { intervalMs: 0 } } })
    try {
      // Slow by far more than a loaded machine slows the others: the fast members' latencies (and
      // so their costs, latency x requests in flight) grow with the machine's load, and a 150 ms
      // stall was once within reach of them (the slow member got 11.9% with four test files at once).
      sims[0]!.setFaults({ stallBeforeHeadersMs: 500 })
      const counts = new Map<string, number>()
      // A fixed number of requests, eight at a time (not a time window: a loaded machine sends
      // fewer); the share is counted once the first 80 have taught the balancer.
      let sent = 0
      let done = 0
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (sent++ < 400) {
            const r = await call(gw, false)
            assert.equal(r.status, 200)
            if (done++ >= 80) counts.set(r.upstream!, (counts.get(r.upstream!) ?? 0) + 1)
          }
        }),
      )
      const total = [...counts.values()].reduce((a, b) => a + b, 0)
      const slowShare = (counts.get('u0') ?? 0) / total
      assert.equal(total, 320)
      assert.ok(slowShare < 0.1, `slow upstream still got ${(slowShare * 100).toFixed(1)}% of ${total}`)
    } finally {
      await gw.close()
      await Promise.all(sims.map((s) => s.close()))
    }
  })

  test('a hedge answers from another upstream when the first is slow; the loser is cancelled', async () => {
    const sims = await Promise.all([startSimulator(), startSimulator()])
    const config: GatewayConfigInput = {
      upstreams: upstreams(sims),
      routing: { balancer: 'weighted-round-robin', hedge: { enabled: true, delayMs: 50 }, retry: { budgetMinPerSecond: 100 }, health: { intervalMs: 0 } },
    }
    const gw = await startGateway(config)
    try {
      // Longer than any wait below: an attempt that was not cancelled is still open at the end.
      sims[0]!.setFaults({ stallBeforeHeadersMs: 60_000 })
      for (let i = 0; i < 4; i++) {
        const r = await call(gw, i % 2 === 0)
        assert.equal(r.status, 200)
        assert.equal(r.upstream, 'u1')
      }
      const metrics = await (await fetch(`${gw.url}/metrics`)).text()
      assert.match(metrics, /velox_hedges_total\{outcome="sent"\} [1-9]/)
      assert.match(metrics, /velox_hedges_total\{outcome="won"\} [1-9]/)
      assert.ok(sims[0]!.stats().requests >= 2, 'positive control: the slow upstream received the first attempts')
      await eventually(() => sims[0]!.stats().open === 0, { what: 'the losing attempts to be cancelled upstream' })
    } finally {
      await gw.close()
      await Promise.all(sims.map((s) => s.close()))
    }
  })

  test('aliases map a public name to an upstream model id; consistent hashing keeps a user on one member', async () => {
    const sims = await Promise.all([startSimulator(), startSimulator(), startSimulator()])
    const gw = await startGateway({
      upstreams: sims.map((s, i) => ({ name: `u${i}`, url: s.url, models: ['llama-8b'] })),
      routing: { balancer: 'consistent-hash', aliases: { fast: { model: 'llama-8b' } }, health: { intervalMs: 0 } },
    })
    try {
      const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as { data: Array<{ id: string }> }
      assert.deepEqual(models.data.map((m) => m.id), ['fast', 'llama-8b'])
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'fast' }))
      assert.equal(((await res.json()) as { model: string }).model, 'llama-8b')
      for (const user of ['alice', 'bob', 'carol']) {
        const seen = new Set<string>()
        for (let i = 0; i < 5; i++) {
          const r = await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'llama-8b', user }))
          await r.arrayBuffer()
          seen.add(r.headers.get('x-velox-upstream')!)
        }
        assert.equal(seen.size, 1, `${user} was spread over ${[...seen]}`)
      }
    } finally {
      await gw.close()
      await Promise.all(sims.map((s) => s.close()))
    }
  })
})

describe('peer regions', () => {
  test('a peer tier serves when the local tier is down, marks the hop, and never takes a forwarded request', async () => {
    const local = await startSimulator()
    const hops: Array<string | undefined> = []
    const { startRawUpstream } = await import('../helpers/gateway.ts')
    const peer = await startRawUpstream((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.method === 'POST') hops.push(req.headers['x-velox-hop'] as string | undefined)
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"from":"peer"}')
      })
    })
    const gw = await startGateway({
      upstreams: [
        { name: 'local', url: local.url, models: ['*'] },
        { name: 'eu-west-1', url: peer.url, models: ['*'], priority: 1, peer: true },
      ],
      routing: { retry: { maxAttempts: 2 }, health: { intervalMs: 0 } },
    })
    try {
      await local.stopAccepting()
      const served = await post(`${gw.url}/v1/chat/completions`, chatBody())
      assert.equal(served.status, 200)
      assert.equal(served.headers.get('x-velox-upstream'), 'eu-west-1')
      assert.equal(await served.text(), '{"from":"peer"}')
      assert.deepEqual(hops, ['1'])
      const forwarded = await post(`${gw.url}/v1/chat/completions`, chatBody(), { 'x-velox-hop': '1' })
      assert.notEqual(forwarded.status, 200)
      await forwarded.arrayBuffer()
      assert.deepEqual(hops, ['1'], 'a forwarded request was bounced to a peer')
    } finally {
      await gw.close()
      await local.close()
      await peer.close()
    }
  })
})

describe('upstream answers that end before the client got a byte', () => {
  /**
   * Upstream answers that end before the client has received a single byte: the gateway still holds
   * everything back, so it can fail over instead of handing the client an empty "success" or a bare
   * connection close. Also the hop-by-hop headers an upstream names in `Connection`.
   */
  let sim: Simulator
  let raw: Awaited<ReturnType<typeof startRawUpstream>>
  let gw: TestGateway

  before(async () => {
    sim = await startSimulator({ tokens: 3 })
    raw = await startRawUpstream((req, res) => {
      if (req.method === 'GET') return void res.end('ok')
      req.resume()
      switch (req.headers['x-request-id']) {
        case 'empty-sse':
          // A 200 event stream with no event at all: not a completion.
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          return void res.end()
        case 'cut-json':
          // Headers promise 100 bytes; the connection dies before the first one.
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
          res.flushHeaders()
          return void setTimeout(() => res.socket?.destroy(), 20)
        case 'connection-named':
          res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': 'internal' })
          return void res.end('{"object":"chat.completion","choices":[]}')
        default:
          res.writeHead(500)
          res.end()
      }
    })
    gw = await startGateway({
      upstreams: [
        { name: 'raw', url: raw.url, models: ['*'], priority: 0, pool: { warm: 1 } },
        { name: 'sim', url: sim.url, models: ['*'], priority: 1, pool: { warm: 1 } },
      ],
      routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 3, budgetMinPerSecond: 1000 }, outlier: { consecutiveFailures: 1000 } },
      cache: { enabled: false },
    })
  })

  after(async () => {
    await gw.close()
    await raw.close()
    await sim.close()
  })

  test('control: a 500 before anything was sent fails over to the next tier', async () => {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody(), { 'x-request-id': 'plain-500' })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('x-velox-upstream'), 'sim')
    await res.arrayBuffer()
  })

  test(
    'a 200 event stream that ends without a single event fails over instead of passing as an empty success',
    async () => {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true }), { 'x-request-id': 'empty-sse' })
      const { events } = await readEvents(res)
      assert.equal(res.headers.get('x-velox-upstream'), 'sim', `served by ${res.headers.get('x-velox-upstream')} with ${events.length} events`)
      assert.equal(events.at(-1), 'data: [DONE]')
    },
  )

  test(
    'a non-streamed answer that dies before its first body byte fails over (nothing reached the client yet)',
    async () => {
      let res: Response
      try {
        res = await post(`${gw.url}/v1/chat/completions`, chatBody(), { 'x-request-id': 'cut-json' })
      } catch (err) {
        assert.fail(`the client got no HTTP response at all: ${(err as Error).message} ${String((err as { cause?: unknown }).cause)}`)
      }
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('x-velox-upstream'), 'sim')
      await res.arrayBuffer()
    },
  )

  test(
    'headers the upstream names in Connection are hop-by-hop and not forwarded',
    async () => {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody(), { 'x-request-id': 'connection-named' })
      await res.arrayBuffer()
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('x-upstream-hop'), null)
    },
  )
})

describe('a large upstream error body with no retry left', () => {
  /**
   * An upstream error answer kept back for pass-through (a 5xx with no retry left) is held only
   * while it is small (64 KiB); past that it streams on with backpressure, so one misbehaving
   * upstream (a proxy's HTML error page, an error stream that never stops) cannot grow the
   * gateway's memory without bound. Seen from the upstream: to a client that does not read, it
   * can write only what socket buffers hold; to one that reads, all of it (the control).
   */
  const TOTAL = 64 * 1024 * 1024
  let written = 0
  let finishUpstream: (() => void) | null = null
  let up: Awaited<ReturnType<typeof startRawUpstream>>
  let gw: TestGateway

  before(async () => {
    up = await startRawUpstream((req, res) => {
      if (req.method === 'GET') return void res.end('ok')
      req.resume()
      const status = req.url === '/v1/embeddings' ? 200 : 503
      res.writeHead(status, { 'content-type': 'text/html' })
      const chunk = Buffer.alloc(64 * 1024, 'e')
      // Writes as fast as the gateway takes it, then keeps the response open until the test is done.
      const pump = (): void => {
        while (written < TOTAL) {
          written += chunk.length
          if (!res.write(chunk)) return void res.once('drain', pump)
        }
        finishUpstream = () => res.end()
      }
      res.on('close', () => (finishUpstream = null))
      pump()
    })
    gw = await startGateway({
      upstreams: [{ name: 'raw', url: up.url, models: ['*'], pool: { warm: 1 } }],
      routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
      cache: { enabled: false },
    })
  })

  after(async () => {
    await gw.close()
    await up.close()
  })

  /** Sends a request on a raw socket that never reads; returns the socket and how many bytes it has received. */
  function stalledClient(path: string): { socket: net.Socket; received: () => number } {
    const body = chatBody()
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
    socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    let received = 0
    socket.on('data', (d: Buffer) => (received += d.length))
    socket.pause()
    return { socket, received: () => received }
  }

  /** Waits until the upstream stops making progress (blocked by backpressure, or everything written). */
  async function settle(): Promise<void> {
    let last = -1
    await eventually(() => {
      const still = written === last
      last = written
      return still
    }, { what: 'the upstream to stop writing', timeoutMs: 20_000, intervalMs: 200 })
  }

  /** How much the upstream wrote to a client of `path` that never reads. */
  async function writtenToStalledClient(path: string): Promise<number> {
    written = 0
    const client = stalledClient(path)
    await settle()
    const result = written
    finishUpstream?.()
    client.socket.destroy()
    await once(client.socket, 'close')
    return result
  }

  test('control: to a client that reads, the upstream writes its whole error body', async () => {
    written = 0
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
    assert.equal(res.status, 503)
    const reading = res.arrayBuffer()
    // finishUpstream is set once the last chunk is written (after its drain, when the write
    // returned false): waiting on `written` alone could end nothing and leave the body open.
    const finish = await eventually(() => finishUpstream, { what: `the upstream to write ${TOTAL} bytes`, timeoutMs: 30_000 })
    assert.equal(written, TOTAL)
    finish()
    assert.equal((await reading).byteLength, TOTAL)
  })

  test('a large 200 body to a client that does not read is held back by backpressure', async () => {
    const w = await writtenToStalledClient('/v1/embeddings')
    assert.ok(w < TOTAL / 2, `upstream wrote ${w} bytes`)
  })

  test('a large 5xx body with no retry left is not buffered without bound', async () => {
    const w = await writtenToStalledClient('/v1/chat/completions')
    assert.ok(w < TOTAL / 2, `the gateway took ${Math.round(w / 1048576)} MiB of an upstream error body from the upstream for a client that reads nothing`)
  })
})
