/**
 * The lean handler serves plain proxied requests straight from node:http; fastify serves the
 * rest. A query string (`?via=fastify`) sends the same request through fastify's route, so every
 * case below is answered by both, and the answers must match: status, body, the headers a client
 * reads, metrics and access-log lines.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { LeanHandler, LeanIncomingMessage, leanRequestsSupported } from '../../gateway/src/proxy/lean-handler.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, startGateway, type TestGateway } from '../helpers/gateway.ts'

interface Answer {
  status: number
  body: string
  headers: Record<string, string | null>
}

const COMPARED_HEADERS = ['content-type', 'retry-after', 'x-velox-upstream', 'access-control-allow-origin', 'x-ratelimit-limit-requests']

async function call(url: string, path: string, body: string, headers: Record<string, string>): Promise<Answer & { requestId: string | null }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const text = await res.text()
  const picked: Record<string, string | null> = {}
  for (const name of COMPARED_HEADERS) picked[name] = res.headers.get(name)
  return { status: res.status, body: text, headers: picked, requestId: res.headers.get('x-request-id') }
}

/** Bodies carry ids and timings that differ per request; everything else must be equal. */
function comparable(body: string): string {
  return body.replace(/"(id|created|request_id)":\s*("[^"]*"|\d+)/g, '"$1":_')
}

describe('lean handler', () => {
  let sim: Simulator
  let gw: TestGateway
  let taken = 0
  /** The last request the lean handler took. */
  let lastTaken: IncomingMessage | null = null
  let lastTakenRes: ServerResponse | null = null
  const take = LeanHandler.prototype.take

  before(async () => {
    sim = await startSimulator({ tokens: 4, models: ['velox-sim-1'] })
    gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'], pool: { warm: 1 } }],
      auth: { keys: [{ name: 'app', hash: `sha256:${createHash('sha256').update('sk-lean-test').digest('hex')}`, tenant: 'acme' }] },
      limits: { rules: [{ requestsPerMinute: 100_000 }] },
      server: { cors: { origins: ['https://app.example.com'] } },
      telemetry: { accessLog: { enabled: true } },
    })
    LeanHandler.prototype.take = function counted(this: LeanHandler, req, res) {
      const served = take.call(this, req, res)
      if (served) {
        taken++
        lastTaken = req
        lastTakenRes = res
      }
      return served
    }
  })
  after(async () => {
    LeanHandler.prototype.take = take
    await gw.close()
    await sim.close()
  })

  const auth = { authorization: 'Bearer sk-lean-test', origin: 'https://app.example.com' }
  const cases: { name: string; path: string; body: string; headers: Record<string, string> }[] = [
    { name: 'a chat completion', path: '/v1/chat/completions', body: chatBody({ max_tokens: 4 }), headers: auth },
    { name: 'a stream', path: '/v1/chat/completions', body: chatBody({ stream: true }), headers: auth },
    { name: 'no API key', path: '/v1/chat/completions', body: chatBody(), headers: {} },
    { name: 'invalid JSON', path: '/v1/chat/completions', body: '{"model":', headers: auth },
    { name: 'no model', path: '/v1/completions', body: '{"prompt":"x"}', headers: auth },
    { name: 'an unknown model', path: '/v1/embeddings', body: JSON.stringify({ model: 'nope', input: 'x' }), headers: auth },
    { name: 'a JSON array', path: '/v1/responses', body: '[1,2]', headers: auth },
    { name: 'Anthropic Messages', path: '/v1/messages', body: JSON.stringify({ model: 'velox-sim-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }), headers: auth },
    { name: 'Anthropic Messages without max_tokens', path: '/v1/messages', body: JSON.stringify({ model: 'velox-sim-1', messages: [] }), headers: auth },
    { name: 'Anthropic Messages without a key', path: '/v1/messages', body: JSON.stringify({ model: 'velox-sim-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }), headers: {} },
  ]

  for (const c of cases) {
    test(`${c.name}: the same answer from the lean handler and from fastify`, async () => {
      const before = taken
      const lean = await call(gw.url, c.path, c.body, c.headers)
      assert.equal(taken, before + 1, 'the lean handler served the plain request')
      const viaFastify = await call(gw.url, `${c.path}?via=fastify`, c.body, c.headers)
      assert.equal(taken, before + 1, 'a query string goes to fastify')
      assert.equal(lean.status, viaFastify.status)
      assert.deepEqual(lean.headers, viaFastify.headers)
      assert.equal(comparable(lean.body), comparable(viaFastify.body))
      assert.match(lean.requestId ?? '', /^[0-9a-f-]{36}$/)
    })
  }

  test("the client's x-request-id is kept, as fastify keeps it", async () => {
    const res = await call(gw.url, '/v1/chat/completions', '{', { ...auth, 'x-request-id': 'req-lean-1' })
    assert.equal(res.status, 400)
    assert.equal(res.requestId, 'req-lean-1')
  })

  test('refusals are counted and logged under their route, whichever handler refused them', async () => {
    const scrape = async (): Promise<number> => {
      const text = await gw.app.velox.metrics.registry.metrics()
      const line = text.split('\n').find((l) => l.startsWith('velox_requests_total{') && l.includes('route="embeddings"') && l.includes('status="404"'))
      return line === undefined ? 0 : Number(line.split(' ').at(-1))
    }
    const body = JSON.stringify({ model: 'nope', input: 'x' })
    const start = await scrape()
    await call(gw.url, '/v1/embeddings', body, auth)
    assert.equal(await scrape(), start + 1)
    await call(gw.url, '/v1/embeddings?via=fastify', body, auth)
    assert.equal(await scrape(), start + 2)
  })

  test('requests the lean handler leaves alone: chunked, compressed, form-typed, other methods', async () => {
    const before = taken
    const chunked = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode(chatBody())), c.close()) }),
      duplex: 'half',
    } as RequestInit)
    assert.equal(chunked.status, 200)
    await chunked.text()
    const gzipped = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...auth }, body: gzipSync(chatBody()) })
    assert.equal(gzipped.status, 200)
    await gzipped.text()
    const form = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth }, body: chatBody() })
    assert.equal(form.status, 200)
    await form.text()
    const get = await fetch(`${gw.url}/v1/chat/completions`, { headers: auth })
    assert.equal(get.status, 405)
    await get.text()
    assert.equal(taken, before, 'fastify served them all')
  })

  test('a body that arrives in several chunks is forwarded whole', async () => {
    const { request } = await import('node:http')
    const body = chatBody({ max_tokens: 2, user: 'x'.repeat(70_000) })
    const before = taken
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...auth } }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode!, text }))
      })
      req.on('error', reject)
      // Three writes with a round trip between: the gateway sees several chunks.
      const bytes = Buffer.from(body)
      req.write(bytes.subarray(0, 10))
      setImmediate(() => {
        req.write(bytes.subarray(10, 40_000))
        setImmediate(() => req.end(bytes.subarray(40_000)))
      })
    })
    assert.equal(taken, before + 1)
    assert.equal(answer.status, 200, answer.text)
    assert.equal((JSON.parse(answer.text) as { object: string }).object, 'chat.completion')
  })

  test('a taken request is read, ended and closed without stream events, as Node does for a GET', async () => {
    const before = taken
    const res = await call(gw.url, '/v1/chat/completions', chatBody({ max_tokens: 2 }), auth)
    assert.equal(res.status, 200)
    assert.equal(taken, before + 1)
    const req = lastTaken!
    assert.ok(req instanceof LeanIncomingMessage)
    assert.equal(req.lean, null, 'the exchange is let go once the body is complete')
    assert.equal(req.complete, true)
    assert.equal(req.readableEnded, true)
    assert.equal(req.destroyed, true)
    // node:http waits for 'end' to let go of a request that has not ended: nothing may be left waiting.
    assert.equal(req.listenerCount('end'), 0)
    assert.equal(req.listenerCount('data'), 0)
    // The upload guard forgets a taken request when its body is complete, not on the response's close.
    // What is left once the call finished: the open-request count's listener alone.
    assert.equal(lastTakenRes!.listenerCount('close'), 1)
  })

  test('pipelined requests on one connection are each answered, in order', async () => {
    const before = taken
    const bodies = [chatBody({ max_tokens: 1, user: 'first' }), '{"model":', chatBody({ max_tokens: 1, user: 'third' })]
    const head = (body: string): string => `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${auth.authorization}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
      let received = ''
      socket.setEncoding('latin1')
      socket.on('data', (chunk: string) => {
        received += chunk
        if ((received.match(/HTTP\/1\.1 /g) ?? []).length === 3 && received.trimEnd().endsWith('}')) socket.end()
      })
      socket.on('end', () => resolve(received))
      socket.on('error', reject)
      // All three in one write: the parser meets the second while the first is being served.
      socket.write(bodies.map(head).join(''))
    })
    assert.equal(taken, before + 3)
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))
    assert.deepEqual(statuses, [200, 400, 200])
  })
})

test('this Node has the fast path the lean handler takes request bodies through', () => {
  // IncomingMessage.prototype._dumpAndCloseReadable (Node's own path for a GET). Without it the
  // server is built with plain requests and every proxied request goes through fastify: slower,
  // not wrong, so a Node upgrade that drops it must fail here rather than pass unnoticed.
  assert.ok(leanRequestsSupported)
})
