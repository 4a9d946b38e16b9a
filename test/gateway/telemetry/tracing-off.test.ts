/**
 * No exporter configured, no cost: the SDK is never loaded, only @opentelemetry/api, and a
 * request pays nothing for tracing (checked by watching every module the process resolves).
 */
// npm test: a process of its own (it checks every module the process resolves, through a module hook it installs)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { recordResolvedModules } from '../../helpers/resolved-modules.ts'

const resolved = recordResolvedModules()

test('without OTEL_* variables or config, the SDK is never loaded and requests still carry ids', async () => {
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k]
  const { startGateway, post, chatBody } = await import('../../helpers/gateway.ts')
  const { startSimulator } = await import('../../../gateway/src/simulator/server.ts')
  const { startTracing, activeTracing } = await import('../../../gateway/src/telemetry/tracing.ts')
  const { createLogger } = await import('../../../gateway/src/telemetry/logger.ts')
  assert.equal(await startTracing({ captureContent: false }, createLogger('silent')), null)
  const sim = await startSimulator()
  const gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }] })
  try {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true }), { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
    await res.arrayBuffer()
  } finally {
    await gw.close()
    await sim.close()
  }
  assert.equal(activeTracing(), null)
  const otel = resolved.filter((u) => u.includes('/@opentelemetry/'))
  assert.ok(otel.some((u) => u.includes('/@opentelemetry/api/')), 'the API is what the request path imports')
  assert.deepEqual(otel.filter((u) => !u.includes('/@opentelemetry/api/')), [], 'an SDK package was loaded with no exporter configured')
})
