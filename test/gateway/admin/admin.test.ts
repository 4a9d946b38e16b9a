/** The admin listener: a real gateway in front of real simulators, the admin port on 127.0.0.1:0. */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import { Profile } from 'pprof-format'
import { buildAdminServer } from '../../../gateway/src/admin/server.ts'
import { redactConfig } from '../../../gateway/src/admin/redact.ts'
import { hashKey } from '../../../gateway/src/auth/authenticator.ts'
import { parseConfig } from '../../../gateway/src/config/load.ts'
import { metricsText } from '../../../gateway/src/server.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { chatBody, post, startGateway, type TestGateway } from '../../helpers/gateway.ts'

const TOKEN = 'admin-secret-token'
const auth = { authorization: `Bearer ${TOKEN}` }

describe('admin listener', () => {
  let a: Simulator
  let b: Simulator
  let gw: TestGateway
  let admin: FastifyInstance
  let url: string
  let nextConfig: () => ReturnType<typeof parseConfig>
  const upstreams = () => [
    { name: 'a', url: a.url, models: ['velox-sim-1'] },
    { name: 'b', url: b.url, models: ['velox-sim-1'] },
  ]

  before(async () => {
    a = await startSimulator()
    b = await startSimulator()
    gw = await startGateway({ upstreams: upstreams(), admin: { port: 0 }, routing: { health: { intervalMs: 0 } }, redis: { url: 'redis://:hunter2@127.0.0.1:1/0' }, auth: { keys: [] } })
    nextConfig = () => parseConfig({ log: { level: 'silent' }, upstreams: upstreams(), routing: { health: { intervalMs: 0 } }, admin: { port: 0 }, redis: { url: 'redis://:hunter2@127.0.0.1:1/0' } })
    admin = buildAdminServer(gw.app.velox, {
      token: TOKEN,
      reload: () => gw.app.velox.reload(() => nextConfig()),
      metricsText: () => metricsText(gw.app.velox.metrics),
      logger: createLogger('silent'),
    })
    await admin.listen({ host: '127.0.0.1', port: 0 })
    url = `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}`
  })
  after(async () => {
    await admin.close()
    await gw.close()
    await a.close()
    await b.close()
  })

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(url + path, { method, headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: res.status, json: (await res.json()) as any }
  }
  const upstreamOf = async () => {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
    await res.arrayBuffer()
    return res.headers.get('x-velox-upstream')
  }

  test('needs the admin token (but /healthz does not); the main port serves no /metrics once an admin listener is configured', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }]) {
      const res = await fetch(`${url}/members`, { headers })
      assert.equal(res.status, 401)
      assert.equal(((await res.json()) as any).error.code, 'GW_ERR_ADMIN_UNAUTHORIZED')
    }
    assert.equal((await fetch(`${url}/healthz`)).status, 200)
    assert.equal((await fetch(`${gw.url}/metrics`)).status, 404)
    const metrics = await fetch(`${url}/metrics`, { headers: auth })
    assert.equal(metrics.status, 200)
    const text = await metrics.text()
    assert.match(text, /velox_upstream_member_healthy\{member="a",upstream="a"\} 1/)
    assert.match(text, /velox_upstream_member_ewma_seconds\{member="b",upstream="b"\}/)
    assert.doesNotMatch(text, /velox_upstream_member\{/, 'the mixed-unit gauge is gone')
  })

  test('members with their state; drain and eject move traffic, unknown members are a 404', async () => {
    const { status, json } = await call('GET', '/members')
    assert.equal(status, 200)
    assert.deepEqual(json.members.map((m: any) => m.name).sort(), ['a', 'b'])
    const m = json.members[0]
    for (const k of ['healthy', 'draining', 'breaker', 'ewmaMs', 'outstanding', 'pool', 'available']) assert.ok(k in m, k)

    assert.equal((await call('POST', '/members/a/drain')).json.draining, true)
    for (let i = 0; i < 6; i++) assert.equal(await upstreamOf(), 'b')
    assert.equal((await call('POST', '/members/a/undrain')).json.available, true)

    const ejected = await call('POST', '/members/b/eject?ms=60000')
    assert.equal(ejected.json.breaker.state, 'open')
    assert.ok(ejected.json.breaker.ejectedForMs > 59_000)
    for (let i = 0; i < 6; i++) assert.equal(await upstreamOf(), 'a')
    const text = await (await fetch(`${url}/metrics`, { headers: auth })).text()
    assert.match(text, /velox_upstream_member_breaker_state\{member="b",upstream="b"\} 1/)

    const bad = await call('POST', '/members/b/eject?ms=-1')
    assert.equal(bad.status, 400)
    const missing = await call('POST', '/members/zzz/drain')
    assert.equal(missing.status, 404)
    assert.equal(missing.json.error.code, 'GW_ERR_MEMBER_NOT_FOUND')
  })

  test('purges cache entries by tenant and by key', async () => {
    const body = chatBody({ temperature: 0, messages: [{ role: 'user', content: 'purge me' }] })
    const send = async () => {
      const res = await post(`${gw.url}/v1/chat/completions`, body)
      await res.arrayBuffer()
      return res.headers.get('x-velox-cache')
    }
    assert.equal(await send(), 'miss')
    assert.equal(await send(), 'hit')
    const purged = await call('POST', '/cache/purge', { tenant: 'default' })
    assert.equal(purged.status, 200)
    assert.ok(purged.json.purged.memory >= 1)
    assert.equal(await send(), 'miss')
    assert.equal(await send(), 'hit')
    const plan = gw.app.velox.cache!.plan({ tenant: 'default', endUser: null, endpoint: 'chat.completions', model: 'velox-sim-1', body: JSON.parse(body), headers: {} })
    assert.equal(plan.mode, 'lookup')
    const byKey = await call('POST', '/cache/purge', { key: (plan as { key: string }).key })
    assert.equal(byKey.json.purged.memory, 1)
    assert.equal(await send(), 'miss')

    assert.equal((await call('POST', '/cache/purge', {})).status, 400)
    assert.equal((await call('POST', '/cache/purge', { tenant: 'x', key: 'y' })).status, 400)
    const notJson = await fetch(`${url}/cache/purge`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{' })
    assert.equal(notJson.status, 400)
    assert.equal(((await notJson.json()) as any).error.code, 'GW_ERR_INVALID_JSON')
  })

  test('reload applies a new config, a broken one is a 422 and the running one stays', async () => {
    const before = gw.app.velox.generation
    const ok = await call('POST', '/reload')
    assert.equal(ok.status, 200)
    assert.equal(ok.json.generation, before + 1)
    nextConfig = () => parseConfig({ upstreams: [{ name: 'c', url: 'not a url', models: ['x'] }] })
    const refused = await call('POST', '/reload')
    assert.equal(refused.status, 422)
    assert.equal(refused.json.error.code, 'GW_ERR_RELOAD_REJECTED')
    assert.match(refused.json.error.message, /upstreams\[0\]\.url/)
    assert.equal(gw.app.velox.generation, before + 1)
    nextConfig = () => parseConfig({ log: { level: 'silent' }, upstreams: upstreams(), routing: { health: { intervalMs: 0 } }, admin: { port: 0 }, redis: { url: 'redis://:hunter2@127.0.0.1:1/0' } })
  })

  test('the running config, secrets redacted', async () => {
    const { json } = await call('GET', '/config')
    const text = JSON.stringify(json)
    assert.doesNotMatch(text, /hunter2/)
    assert.match(json.config.redis.url, /^redis:\/\/:%5Bredacted%5D@127\.0\.0\.1:1\/0$/)
    assert.equal(json.config.upstreams.length, 2)
    assert.equal(json.config.admin.port, 0)
    const redacted = redactConfig({ auth: { keys: [{ name: 'k', hash: hashKey('x'), tenant: 't' }] }, upstreams: [{ url: 'https://user:pw@h/x', apiKeyEnv: 'KEY' }] }) as any
    assert.equal(redacted.auth.keys[0].hash, '[redacted]')
    assert.equal(redacted.auth.keys[0].name, 'k')
    assert.equal(redacted.upstreams[0].url, 'https://%5Bredacted%5D:%5Bredacted%5D@h/x')
    assert.equal(redacted.upstreams[0].apiKeyEnv, 'KEY', 'a variable name is no secret')
  })

  test('CPU and heap profiles in pprof format; one CPU profile at a time', async () => {
    const profiling = fetch(`${url}/debug/pprof/profile?seconds=1`, { headers: auth })
    // Load while it samples, so the profile has the gateway's own frames.
    const load = (async () => {
      for (let i = 0; i < 20; i++) await upstreamOf()
    })()
    const busy = await fetch(`${url}/debug/pprof/profile?seconds=1`, { headers: auth })
    assert.equal(busy.status, 409)
    assert.equal(((await busy.json()) as any).error.code, 'GW_ERR_PROFILE_BUSY')
    const res = await profiling
    await load
    assert.equal(res.status, 200)
    const cpu = Profile.decode(gunzipSync(Buffer.from(await res.arrayBuffer())))
    assert.ok(cpu.sample.length > 0, 'no CPU samples')
    const strings = cpu.stringTable.strings
    assert.ok(strings.some((s) => s.includes('gateway/src')), 'no gateway frame in the CPU profile')

    const heap = await fetch(`${url}/debug/pprof/heap?seconds=0.2`, { headers: auth })
    assert.equal(heap.status, 200)
    const hp = Profile.decode(gunzipSync(Buffer.from(await heap.arrayBuffer())))
    assert.ok(hp.sampleType.length > 0)
    assert.equal((await fetch(`${url}/debug/pprof/profile?seconds=9999`, { headers: auth })).status, 400)
  })
})

test('the main port keeps /metrics for local use only: not once client auth is on', async () => {
  const sim = await startSimulator()
  const open = await startGateway({ upstreams: [{ name: 's', url: sim.url, models: ['*'] }] })
  const authed = await startGateway({ upstreams: [{ name: 's', url: sim.url, models: ['*'] }], auth: { keys: [{ name: 'k', hash: hashKey('k'), tenant: 't' }] } })
  try {
    assert.equal((await fetch(`${open.url}/metrics`)).status, 200)
    assert.equal((await fetch(`${authed.url}/metrics`)).status, 404)
  } finally {
    await open.close()
    await authed.close()
    await sim.close()
  }
})

test('an admin listener off loopback needs a token', () => {
  assert.throws(() => parseConfig({ admin: { host: '0.0.0.0', port: 9901 } }), /admin\.tokenEnv/)
  parseConfig({ admin: { host: '0.0.0.0', port: 9901, tokenEnv: 'VELOX_ADMIN_TOKEN' } })
  parseConfig({ admin: { port: 9901 } })
})
