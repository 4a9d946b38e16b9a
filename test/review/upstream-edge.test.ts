/**
 * Upstream answers that end before the client has received a single byte: the gateway still holds
 * everything back, so it can fail over instead of handing the client an empty "success" or a bare
 * connection close. Also the hop-by-hop headers an upstream names in `Connection`.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, readEvents, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'

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
