/**
 * `GET /usage` on the admin listener: real gateways in front of the simulator, the admin listener
 * on 127.0.0.1:0; per-process totals with the memory backend, and totals of two gateways sharing a
 * real redis-server (surviving a restart, and a clear 503 while Redis is down).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildAdminServer } from '../../../gateway/src/admin/server.ts'
import { parseUsageQuery, usageReport } from '../../../gateway/src/admin/usage.ts'
import { hashKey } from '../../../gateway/src/auth/authenticator.ts'
import type { GatewayConfigInput } from '../../../gateway/src/config/schema.ts'
import { requestPathRedisOptions } from '../../../gateway/src/config/redis-client.ts'
import { utcDay, UsageLedger } from '../../../gateway/src/limits/usage.ts'
import { metricsText } from '../../../gateway/src/server.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { chatBody, post, startGateway, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'
import { RedisServer } from '../cache/helpers.ts'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'

const TOKEN = 'usage-admin-token'
const keys = [
  { name: 'acme-prod', hash: hashKey('sk-acme-prod'), tenant: 'acme' },
  { name: 'acme-dev', hash: hashKey('sk-acme-dev'), tenant: 'acme' },
  { name: 'globex-1', hash: hashKey('sk-globex-1'), tenant: 'globex' },
]

let sim: Simulator
before(async () => {
  sim = await startSimulator({ models: ['velox-sim-1', 'velox-sim-2'] })
})
after(async () => {
  await sim.close()
})

interface Running {
  gw: TestGateway
  admin: FastifyInstance
  adminUrl: string
  close(): Promise<void>
}

async function gatewayWithAdmin(extra: GatewayConfigInput = {}): Promise<Running> {
  const gw = await startGateway({
    upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1', 'velox-sim-2'] }],
    routing: { health: { intervalMs: 0 } },
    cache: { enabled: false },
    auth: { keys },
    admin: { port: 0 },
    limits: { prices: { 'velox-sim-*': { inputPerMillion: 1, outputPerMillion: 2 } } },
    ...extra,
  })
  const admin = buildAdminServer(gw.app.velox, { token: TOKEN, reload: null, metricsText: () => metricsText(gw.app.velox.metrics), logger: createLogger('silent') })
  await admin.listen({ host: '127.0.0.1', port: 0 })
  const adminUrl = `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}`
  return {
    gw,
    admin,
    adminUrl,
    close: async () => {
      await admin.close()
      await gw.close()
    },
  }
}

async function chat(gw: TestGateway, key: string, model = 'velox-sim-1'): Promise<{ input: number; output: number }> {
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ model }), { authorization: `Bearer sk-${key}` })
  assert.equal(res.status, 200)
  const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }
  return { input: body.usage.prompt_tokens, output: body.usage.completion_tokens }
}

async function usage(r: Running, query = ''): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(`${r.adminUrl}/usage${query}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  return { status: res.status, headers: res.headers, json: await res.json() }
}

/** The usage of finished requests is booked when each response ends: poll until it shows. */
function untilRequests(r: Running, n: number, query = ''): Promise<any> {
  return eventually(
    async () => {
      const { status, json } = await usage(r, query)
      assert.equal(status, 200)
      assert.equal(json.totals.requests, n, JSON.stringify(json))
      return json
    },
    { what: `usage to show ${n} requests` },
  )
}

test('per tenant, key and model per day, with filters and grouping; the admin token is required', async () => {
  const r = await gatewayWithAdmin()
  try {
    const spent = { prod: { input: 0, output: 0 }, dev: { input: 0, output: 0 }, globex: { input: 0, output: 0 } }
    for (let i = 0; i < 3; i++) {
      const u = await chat(r.gw, 'acme-prod')
      spent.prod.input += u.input
      spent.prod.output += u.output
    }
    const d = await chat(r.gw, 'acme-dev', 'velox-sim-2')
    spent.dev = d
    const g = await chat(r.gw, 'globex-1')
    spent.globex = g
    const report = await untilRequests(r, 5)
    const today = utcDay(Date.now())
    assert.equal(report.from, today)
    assert.equal(report.to, today)
    assert.equal(report.shared, false)
    assert.deepEqual(report.by, ['tenant', 'key', 'model'])
    const cost = (u: { input: number; output: number }) => Math.round((u.input * 1 + u.output * 2)) / 1e6
    assert.deepEqual(report.days[0].rows, [
      { tenant: 'acme', key: 'acme-dev', model: 'velox-sim-2', requests: 1, inputTokens: spent.dev.input, outputTokens: spent.dev.output, cost: cost(spent.dev) },
      { tenant: 'acme', key: 'acme-prod', model: 'velox-sim-1', requests: 3, inputTokens: spent.prod.input, outputTokens: spent.prod.output, cost: cost(spent.prod) },
      { tenant: 'globex', key: 'globex-1', model: 'velox-sim-1', requests: 1, inputTokens: spent.globex.input, outputTokens: spent.globex.output, cost: cost(spent.globex) },
    ])
    assert.equal(report.totals.requests, 5)

    const acme = (await usage(r, '?tenant=acme&by=tenant')).json
    assert.deepEqual(acme.days[0].rows, [{ tenant: 'acme', requests: 4, inputTokens: spent.prod.input + spent.dev.input, outputTokens: spent.prod.output + spent.dev.output, cost: Math.round((cost(spent.prod) + cost(spent.dev)) * 1e6) / 1e6 }])
    const byModel = (await usage(r, '?by=model,tenant&model=velox-sim-1')).json
    assert.deepEqual(byModel.by, ['tenant', 'model'])
    assert.deepEqual(byModel.days[0].rows.map((x: any) => [x.tenant, x.model, x.requests]), [['acme', 'velox-sim-1', 3], ['globex', 'velox-sim-1', 1]])
    assert.equal((await usage(r, '?key=nobody')).json.totals.requests, 0)

    // A week ending today: one series entry per day, empty days included.
    const from = utcDay(Date.now() - 6 * 86_400_000)
    const week = (await usage(r, `?from=${from}&to=${today}`)).json
    assert.deepEqual(week.days.map((x: any) => x.day).at(-1), today)
    assert.equal(week.days.length, 7)
    assert.deepEqual(week.days.slice(0, 6).map((x: any) => x.rows.length), [0, 0, 0, 0, 0, 0])
    assert.equal(week.totals.requests, 5)

    const unauthorized = await fetch(`${r.adminUrl}/usage`)
    assert.equal(unauthorized.status, 401)
  } finally {
    await r.close()
  }
})

test('bad queries: 400 GW_ERR_INVALID_QUERY naming the parameter', async () => {
  const r = await gatewayWithAdmin()
  try {
    for (const [query, param] of [
      ['?day=yesterday', 'day'],
      ['?day=2026-02-30', 'day'],
      ['?day=2026-12-01&from=2026-12-01', 'day'],
      ['?from=2026-12-02&to=2026-12-01', 'to'],
      ['?from=2026-01-01&to=2026-12-01', 'from'],
      ['?by=tenant,region', 'by'],
      ['?tenant=a&tenant=b', 'tenant'],
      ['?model=', 'model'],
    ] as const) {
      const { status, json } = await usage(r, query)
      assert.equal(status, 400, query)
      assert.equal(json.error.code, 'GW_ERR_INVALID_QUERY', query)
      assert.equal(json.error.param, param, query)
    }
  } finally {
    await r.close()
  }
})

test('the query is parsed once: a range of the 40 kept days is the longest', () => {
  const now = Date.parse('2026-12-02T12:00:00Z')
  assert.equal(parseUsageQuery({}, now).fromMs, Date.parse('2026-12-02T00:00:00Z'))
  const q = parseUsageQuery({ from: '2026-10-24' }, now)
  assert.equal((q.toMs - q.fromMs) / 86_400_000 + 1, 40)
  assert.throws(() => parseUsageQuery({ from: '2026-10-23' }, now), /at most 40 days/)
})

test('two gateways sharing a real redis-server: one answer with both gateways\u2019 usage, kept across a restart, 503 while Redis is down', async () => {
  const redis = await RedisServer.start()
  const shared: GatewayConfigInput = { redis: { url: redis.url, keyPrefix: `usage-test-${process.pid}:`, commandTimeoutMs: 200 }, limits: { backend: 'redis', prices: { 'velox-sim-*': { inputPerMillion: 1, outputPerMillion: 2 } } } }
  let a = await gatewayWithAdmin(shared)
  const b = await gatewayWithAdmin(shared)
  try {
    for (let i = 0; i < 4; i++) await chat(a.gw, 'acme-prod')
    for (let i = 0; i < 3; i++) await chat(b.gw, 'globex-1')
    // Each gateway sends its batch within a second; either admin listener then answers for both.
    const fromA = await untilRequests(a, 7)
    assert.equal(fromA.shared, true)
    assert.deepEqual(fromA.days[0].rows.map((x: any) => [x.tenant, x.key, x.requests]), [['acme', 'acme-prod', 4], ['globex', 'globex-1', 3]])
    const fromB = (await usage(b)).json
    assert.deepEqual(fromB.days, fromA.days)

    // A restarted gateway reads the same totals.
    await a.close()
    a = await gatewayWithAdmin(shared)
    assert.deepEqual((await usage(a)).json.days, fromA.days)

    // Redis down: requests are still served, the endpoint says it cannot read the shared totals.
    await redis.stop()
    await chat(a.gw, 'acme-prod')
    const down = await usage(a)
    assert.equal(down.status, 503)
    assert.equal(down.json.error.code, 'GW_ERR_USAGE_UNAVAILABLE')
    assert.equal(down.headers.get('retry-after'), '1')

    // Back (an empty redis-server: this one keeps nothing on disk): the request counted while it
    // was down is sent with the next batch, not lost.
    await redis.restart()
    const back = await untilRequests(a, 1)
    assert.deepEqual(back.days[0].rows.map((x: any) => [x.key, x.requests]), [['acme-prod', 1]])
  } finally {
    await a.close()
    await b.close()
    await redis.stop()
  }
})

test('a ledger that cannot reach Redis reports 503, not an empty day', async () => {
  const client = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  const ledger = new UsageLedger(new Registry(), client)
  await assert.rejects(usageReport(ledger, {}), (err: any) => err.code === 'GW_ERR_USAGE_UNAVAILABLE' && err.retryAfter === 1)
  client.disconnect()
})

test('a batch whose answer is lost (Redis paused past the command timeout) is applied exactly once', async () => {
  const redis = await RedisServer.start()
  const client = new Redis(redis.url, requestPathRedisOptions({ connectTimeoutMs: 1_000, commandTimeoutMs: 100 }))
  client.on('error', () => {})
  await client.connect()
  const ledger = new UsageLedger(new Registry(), client, `exactly-once-${process.pid}:`)
  ledger.setLabels(['m'], ['k'])
  try {
    const now = Date.now()
    for (let i = 0; i < 3; i++) ledger.record({ tenant: 't', keyName: 'k', model: 'm', inputTokens: 10, outputTokens: 20, cost: 0.5 }, now)
    redis.pause()
    // Sent, then timed out: Redis applies it once it runs again, but the ledger cannot know.
    await assert.rejects(ledger.flush())
    assert.equal(ledger.unsettled, true)
    ledger.record({ tenant: 't', keyName: 'k', model: 'm', inputTokens: 1, outputTokens: 2, cost: 0.25 }, now)
    redis.resume()
    await ledger.flush()
    assert.equal(ledger.unsettled, false)
    assert.deepEqual(await ledger.day(utcDay(now)), [{ tenant: 't', key: 'k', model: 'm', requests: 4, inputTokens: 31, outputTokens: 62, cost: 1.75 }])
  } finally {
    redis.resume()
    client.disconnect()
    await redis.stop()
  }
})
