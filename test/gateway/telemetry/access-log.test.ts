/** The access log and the GenAI metrics, through a real gateway in front of the simulator. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { hashKey } from '../../../gateway/src/auth/authenticator.ts'
import { parseConfig } from '../../../gateway/src/config/load.ts'
import type { GatewayConfigInput } from '../../../gateway/src/config/schema.ts'
import { buildServer } from '../../../gateway/src/server.ts'
import { startSimulator } from '../../../gateway/src/simulator/server.ts'
import { FailureLimiter } from '../../../gateway/src/telemetry/access-log.ts'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { chatBody, post, readEvents } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'

async function gatewayWithLog(input: GatewayConfigInput) {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      done()
    },
  })
  const config = parseConfig({ ...input, server: { host: '127.0.0.1', port: 0 } })
  const app = await buildServer(config, { logger: createLogger('info', sink), defaultMetrics: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await app.velox.warmed
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const access = async (n: number): Promise<Array<Record<string, unknown>>> => {
    await eventually(() => lines.filter((l) => l.msg === 'access').length >= n, { what: `${n} access lines`, timeoutMs: 2_000, intervalMs: 10 }).catch(() => {})
    return lines.filter((l) => l.msg === 'access')
  }
  return { app, url, lines, access, close: async () => { app.server.closeAllConnections(); await app.close() } }
}

test('one line per request with id, tenant, route, model, upstream, status, cache, TTFT, duration and tokens', async () => {
  const sim = await startSimulator({ tokens: 6, interTokenMs: 2 })
  const gw = await gatewayWithLog({
    upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'] }],
    auth: { keys: [{ name: 'team-a-key', hash: hashKey('sk-a'), tenant: 'team-a' }] },
    telemetry: { accessLog: { enabled: true } },
    routing: { health: { intervalMs: 0 } },
  })
  try {
    const auth = { authorization: 'Bearer sk-a', 'x-request-id': 'acc-1' }
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true, stream_options: { include_usage: true } }), auth)
    await readEvents(res)
    const bad = await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'nope' }), { ...auth, 'x-request-id': 'acc-2' })
    await bad.arrayBuffer()
    const lines = await gw.access(2)
    const ok = lines.find((l) => l.id === 'acc-1')!
    assert.equal(ok.tenant, 'team-a')
    assert.equal(ok.route, 'chat.completions')
    assert.equal(ok.model, 'velox-sim-1')
    assert.equal(ok.upstream, 'sim')
    assert.equal(ok.status, 200)
    assert.equal(ok.cache, 'bypass')
    assert.ok((ok.ttftMs as number) > 0 && (ok.durationMs as number) >= (ok.ttftMs as number))
    assert.equal(ok.outputTokens, 6)
    assert.ok((ok.inputTokens as number) > 0)
    assert.equal(ok.attempts, 1)
    assert.equal(ok.level, 30)
    const refused = lines.find((l) => l.id === 'acc-2')!
    assert.equal(refused.status, 404)
    assert.equal(refused.error, 'GW_ERR_MODEL_NOT_FOUND')
    assert.equal(refused.level, 40)
    assert.ok(!JSON.stringify(gw.lines).includes('sk-a'), 'a key reached the log')

    const metrics = await gw.app.velox.metrics.registry.metrics()
    assert.match(metrics, /gen_ai_server_time_to_first_token_seconds_count\{gen_ai_operation_name="chat",gen_ai_request_model="velox-sim-1"\} 1/)
    assert.match(metrics, /gen_ai_server_time_per_output_token_seconds_count\{gen_ai_operation_name="chat",gen_ai_request_model="velox-sim-1"\} 1/)
    const tpotSum = Number(/gen_ai_server_time_per_output_token_seconds_sum\{[^}]*\} (\S+)/.exec(metrics)![1])
    assert.ok(tpotSum >= 0.001, `time per output token ${tpotSum} s with 2 ms between tokens`)
    assert.match(metrics, /velox_output_tokens_per_second_count\{[^}]*\} 1/)
  } finally {
    await gw.close()
    await sim.close()
  }
})

test('sampling drops successes, never failures; failure lines are limited per cause', async () => {
  const sim = await startSimulator()
  const gw = await gatewayWithLog({
    upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1'] }, { name: 'dead', url: 'http://127.0.0.1:1', models: ['dead-model'], pool: { warm: 0 } }],
    telemetry: { accessLog: { enabled: true, sampleRatio: 0, failuresPerMinute: 2 } },
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
  })
  try {
    for (let i = 0; i < 3; i++) await (await post(`${gw.url}/v1/chat/completions`, chatBody())).arrayBuffer()
    for (let i = 0; i < 5; i++) await (await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'dead-model' }))).arrayBuffer()
    await (await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'unknown' }))).arrayBuffer()
    const lines = await gw.access(3)
    await new Promise((r) => setImmediate(r))
    assert.equal(lines.filter((l) => l.status === 200).length, 0, 'a sampled-out success was logged')
    assert.equal(lines.filter((l) => l.error === 'GW_ERR_UPSTREAM_UNAVAILABLE').length, 2, 'failure lines beyond the limit')
    assert.equal(lines.filter((l) => l.error === 'GW_ERR_MODEL_NOT_FOUND').length, 1, 'another cause has its own allowance')
    assert.equal(gw.lines.filter((l) => l.msg === 'upstream failure').length, 2, 'upstream failure lines are limited too')
    assert.equal(gw.lines.find((l) => l.msg === 'upstream failure')!.upstream, 'dead')
  } finally {
    await gw.close()
    await sim.close()
  }
})

test('the failure limiter reports what it suppressed once the minute is over', () => {
  const limiter = new FailureLimiter(2)
  assert.equal(limiter.allow('x', 0), 0)
  assert.equal(limiter.allow('x', 10), 0)
  assert.equal(limiter.allow('x', 20), -1)
  assert.equal(limiter.allow('x', 30), -1)
  assert.equal(limiter.allow('y', 30), 0)
  assert.equal(limiter.allow('x', 60_001), 2)
  assert.equal(limiter.allow('x', 60_002), 0)
})
