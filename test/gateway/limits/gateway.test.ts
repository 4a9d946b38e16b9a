/** Limits in the request path: real gateways in front of the simulator, and a real redis-server for the shared case. */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { hashKey } from '../../../gateway/src/auth/authenticator.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { chatBody, post, readEvents, startGateway } from '../../helpers/gateway.ts'
import { configFile, killGatewayProcesses, startGatewayProcess, waitReady, type GatewayProcess } from '../../helpers/process.ts'
import { RedisServer } from '../cache/helpers.ts'

let sim: Simulator
let slow: Simulator
before(async () => {
  sim = await startSimulator()
  slow = await startSimulator({ ttftMs: 300 })
})
after(async () => {
  killGatewayProcesses()
  await sim.close()
  await slow.close()
})

const keys = [
  { name: 'acme-1', hash: hashKey('sk-acme-1'), tenant: 'acme' },
  { name: 'globex-1', hash: hashKey('sk-globex-1'), tenant: 'globex' },
]
const chat = (url: string, key: string, extra: Record<string, unknown> = {}): Promise<Response> => post(`${url}/v1/chat/completions`, chatBody(extra), { authorization: `Bearer ${key}` })

test('over a request limit: 429 in the OpenAI shape with Retry-After, x-ratelimit headers on every answer', async () => {
  const gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'] }], auth: { keys }, limits: { rules: [{ name: 'acme', match: { tenant: 'acme' }, requestsPerMinute: 3, tokensPerMinute: 100_000 }] } })
  try {
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw.url, 'sk-acme-1')
      assert.equal(res.status, 200)
      await res.arrayBuffer()
      assert.equal(res.headers.get('x-ratelimit-limit-requests'), '3')
      assert.equal(res.headers.get('x-ratelimit-remaining-requests'), String(2 - i))
      assert.match(res.headers.get('x-ratelimit-reset-requests')!, /^\d+(ms|s)$|^\d+m\d+s$/)
      assert.equal(res.headers.get('x-ratelimit-limit-tokens'), '100000')
    }
    const refused = await chat(gw.url, 'sk-acme-1')
    assert.equal(refused.status, 429)
    assert.ok(Number(refused.headers.get('retry-after')) >= 59)
    const body = (await refused.json()) as { error: { code: string; type: string; gateway_code: string; message: string } }
    assert.equal(body.error.code, 'rate_limit_exceeded')
    assert.equal(body.error.gateway_code, 'GW_ERR_RATE_LIMITED')
    assert.match(body.error.message, /3 requests per minute/)
    // x-api-key authenticates too, and another tenant is not limited by acme's rule.
    const other = await post(`${gw.url}/v1/chat/completions`, chatBody(), { 'x-api-key': 'sk-globex-1' })
    assert.equal(other.status, 200)
    assert.equal(other.headers.get('x-ratelimit-limit-requests'), null)
    // With client auth on, /metrics is the admin listener's; the registry is what it serves.
    const metrics = await gw.app.velox.metrics.registry.metrics()
    assert.match(metrics, /velox_limit_refusals_total\{rule="acme",dimension="requestsPerMinute"\} 1/)
    assert.match(metrics, /velox_usage_requests_total\{tenant="acme",key="acme-1",model="velox-sim-1"\} 3/)
    assert.match(metrics, /velox_usage_tokens_total\{tenant="acme",key="acme-1",model="velox-sim-1",kind="output"\} \d+/)
  } finally {
    await gw.close()
  }
})

test('token limits reconcile with the usage a stream reports', async () => {
  // Each simulated answer uses far fewer tokens than the 1000 reserved by max_tokens.
  const gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'] }], auth: { keys }, limits: { rules: [{ tokensPerMinute: 2500 }] } })
  try {
    for (let i = 0; i < 6; i++) {
      const res = await chat(gw.url, 'sk-acme-1', { stream: true, max_tokens: 1000, stream_options: { include_usage: true } })
      assert.equal(res.status, 200, `request ${i}`)
      await readEvents(res)
    }
    // Without reconciliation the third would have been refused (3 x 1000 reserved > 2500).
    // A client that did not ask for usage: the gateway asks, reconciles, and the client's stream
    // carries no usage event.
    for (let i = 0; i < 6; i++) {
      const res = await chat(gw.url, 'sk-acme-1', { stream: true, max_tokens: 1000 })
      assert.equal(res.status, 200, `request ${i} without include_usage`)
      const { events } = await readEvents(res)
      assert.equal(events.at(-1), 'data: [DONE]')
      // Servers add `"usage":null` to every chunk once asked (as OpenAI does); the usage event itself is gone.
      assert.ok(events.every((e) => !e.includes('"prompt_tokens"') && !e.includes('"choices":[]')), 'no usage event reaches a client that did not ask')
      assert.ok(events.length > 3)
    }
    const big = await chat(gw.url, 'sk-acme-1', { max_tokens: 5000 })
    assert.equal(big.status, 429)
    assert.equal(big.headers.get('retry-after'), null, 'it can never fit')
  } finally {
    await gw.close()
  }
})

test('concurrency: requests in flight beyond the limit are refused until one ends', async () => {
  const gw = await startGateway({ upstreams: [{ name: 'slow', url: slow.url, models: ['velox-sim-1'] }], auth: { keys }, limits: { rules: [{ match: { key: 'acme-1' }, concurrent: 2 }] } })
  try {
    const inFlight = [chat(gw.url, 'sk-acme-1'), chat(gw.url, 'sk-acme-1')]
    // The two slow requests hold both slots until the simulator answers (300 ms).
    let third: Response
    for (;;) {
      third = await chat(gw.url, 'sk-acme-1')
      if (third.status === 429) break
      await third.arrayBuffer()
    }
    assert.equal(((await third.json()) as { error: { code: string } }).error.code, 'rate_limit_exceeded')
    for (const r of await Promise.all(inFlight)) {
      assert.equal(r.status, 200)
      await r.arrayBuffer()
    }
    const after = await chat(gw.url, 'sk-acme-1')
    assert.equal(after.status, 200)
    await after.arrayBuffer()
  } finally {
    await gw.close()
  }
})

test('three gateway processes sharing redis-server admit a 600-per-minute limit to within 1%, and keep answering when Redis dies', async () => {
  const redis = await RedisServer.start()
  const procs: GatewayProcess[] = []
  try {
    const yaml = `
upstreams:
  - name: sim
    url: ${sim.url}
    models: [velox-sim-1]
admin:
  port: 0
redis:
  url: ${redis.url}
  keyPrefix: "limits-e2e:"
  commandTimeoutMs: 2000
auth:
  keys:
    - { name: acme-1, hash: "${hashKey('sk-acme-1')}", tenant: acme }
limits:
  backend: redis
  rules:
    - { name: acme, match: { tenant: acme }, requestsPerMinute: 600 }
`
    const path = configFile(yaml)
    for (let i = 0; i < 3; i++) procs.push(await startGatewayProcess(['--config', path]))
    await Promise.all(procs.map((p) => waitReady(p.url)))
    const statuses: number[] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < 1000) {
        const i = next++
        const res = await chat(procs[i % 3]!.url, 'sk-acme-1')
        statuses.push(res.status)
        await res.arrayBuffer()
      }
    }
    await Promise.all(Array.from({ length: 24 }, worker))
    const admitted = statuses.filter((s) => s === 200).length
    assert.deepEqual(statuses.filter((s) => s !== 200 && s !== 429), [], 'every answer is a 200 or a 429')
    assert.ok(admitted <= 600 && admitted >= 594, `${admitted} of 1000 admitted`)

    await redis.stop()
    const during = await Promise.all(Array.from({ length: 60 }, (_, i) => chat(procs[i % 3]!.url, 'sk-acme-1').then(async (r) => (await r.arrayBuffer(), r.status))))
    assert.ok(during.every((s) => s === 200 || s === 429), `answers with Redis down: ${[...new Set(during)]}`)
    const adminPort = /"port":(\d+)[^\n]*"msg":"admin listener up"/.exec(procs[0]!.logs())?.[1]
    assert.ok(adminPort, 'no admin listener line')
  } finally {
    for (const p of procs) p.child.kill('SIGKILL')
    await redis.stop()
  }
})
