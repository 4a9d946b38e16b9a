/**
 * A config reload must not take failover away from requests already running: "requests already
 * running finish on the old snapshot", but the old snapshot's pools are closed at the swap, so a
 * retry or hedge those requests send afterwards is dispatched on a closed undici pool.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { parseConfig } from '../../gateway/src/config/load.ts'
import type { GatewayConfigInput } from '../../gateway/src/config/schema.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, startRawUpstream, startGateway, type TestGateway } from '../helpers/gateway.ts'

let sim: Simulator
let slow: Awaited<ReturnType<typeof startRawUpstream>>
let gw: TestGateway
let config: GatewayConfigInput

before(async () => {
  sim = await startSimulator()
  // Answers health checks at once and every completion with a 503 after 300 ms.
  slow = await startRawUpstream((req, res) => {
    if (req.method === 'GET') return void res.end('ok')
    req.resume()
    setTimeout(() => {
      res.writeHead(503, { 'content-type': 'application/json' })
      res.end('{"error":{"message":"overloaded","type":"server_error","code":null,"param":null}}')
    }, 300)
  })
  config = {
    log: { level: 'silent' },
    upstreams: [
      { name: 'flaky', url: slow.url, models: ['*'], priority: 0, pool: { warm: 1 } },
      { name: 'healthy', url: sim.url, models: ['*'], priority: 1, pool: { warm: 1 } },
    ],
    routing: { retry: { maxAttempts: 3, budgetMinPerSecond: 1000 }, health: { intervalMs: 0 }, outlier: { consecutiveFailures: 1000 } },
  }
  gw = await startGateway(config)
})

after(async () => {
  await gw.close()
  await slow.close()
  await sim.close()
})

test('control: without a reload the 503 fails over to the healthy upstream', async () => {
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
  assert.equal(res.status, 200, await res.clone().text())
  assert.equal(res.headers.get('x-velox-upstream'), 'healthy')
  await res.arrayBuffer()
})

test(
  'a request in flight during a reload still fails over when its first upstream answers 503',
  async () => {
    const pending = post(`${gw.url}/v1/chat/completions`, chatBody())
    await new Promise((r) => setTimeout(r, 80))
    // Same upstreams: nothing about the healthy member changed, yet it is no longer usable by this request.
    const result = await gw.app.velox.reload(() => parseConfig({ ...config, server: { host: '127.0.0.1', port: 0 } }))
    assert.equal(result.applied, true)
    const res = await pending
    const text = await res.text()
    assert.equal(res.status, 200, `got ${res.status}: ${text}`)
    assert.equal(res.headers.get('x-velox-upstream'), 'healthy')
  },
)
