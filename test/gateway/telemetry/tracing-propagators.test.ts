/**
 * OTEL_PROPAGATORS: which context the gateway reads from the client and writes upstream. The SDK is
 * started once per process, so this file runs it with `baggage` alone (and an unsupported value,
 * which is warned about and ignored); tracing.test runs the default (tracecontext,baggage).
 */
// npm test: a process of its own (it sets OTEL_* variables and registers the global tracer and propagators)
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { Writable } from 'node:stream'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { propagatorsFromEnv } from '../../../gateway/src/telemetry/sdk.ts'
import { activeTracing, startTracing } from '../../../gateway/src/telemetry/tracing.ts'
import { post, startGateway, startRawUpstream, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'
import { startOtlpJsonReceiver, type OtlpReceiver, type OtlpSpan } from '../../helpers/otlp-receiver.ts'


const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
let spans: OtlpSpan[] = []
const upstreamSaw: http.IncomingHttpHeaders[] = []
const logLines: Array<Record<string, unknown>> = []
let receiver: OtlpReceiver
let upstream: Awaited<ReturnType<typeof startRawUpstream>>
let gw: TestGateway

function capturingLogger(): ReturnType<typeof createLogger> {
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line)); done() } })
  return createLogger('info', sink)
}

function withPropagators<T>(value: string | undefined, fn: () => T): T {
  const saved = process.env.OTEL_PROPAGATORS
  if (value === undefined) delete process.env.OTEL_PROPAGATORS
  else process.env.OTEL_PROPAGATORS = value
  try {
    return fn()
  } finally {
    if (saved === undefined) delete process.env.OTEL_PROPAGATORS
    else process.env.OTEL_PROPAGATORS = saved
  }
}

before(async () => {
  receiver = await startOtlpJsonReceiver()
  spans = receiver.spans
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
  process.env.OTEL_TRACES_SAMPLER = 'always_on'
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50'
  process.env.OTEL_PROPAGATORS = 'baggage,b3'
  assert.ok(await startTracing({ captureContent: false }, capturingLogger()))
  upstream = await startRawUpstream((req, res) => {
    if (req.method === 'POST') upstreamSaw.push(req.headers)
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}')
  })
  gw = await startGateway({ upstreams: [{ name: 'up', url: upstream.url, models: ['*'], pool: { warm: 0 } }], routing: { health: { intervalMs: 0 } } })
})

after(async () => {
  await gw?.close()
  await upstream?.close()
  await activeTracing()?.shutdown()
  receiver?.close()
})

test('OTEL_PROPAGATORS=baggage: the client traceparent is not continued and none goes upstream; baggage does', async () => {
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }), {
    'x-request-id': 'prop-1',
    traceparent: `00-${TRACE}-00f067aa0ba902b7-01`,
    tracestate: 'vendor=abc',
    baggage: 'tenant.tier=gold',
  })
  assert.equal(res.status, 200)
  await res.arrayBuffer()
  const saw = upstreamSaw.find((h) => h['x-request-id'] === 'prop-1') ?? assert.fail('the upstream saw no request')
  assert.equal(saw.traceparent, undefined)
  assert.equal(saw.tracestate, undefined)
  assert.equal(saw.baggage, 'tenant.tier=gold')
  const server = (): OtlpSpan | undefined => spans.find((s) => s.kind === 2 && s.attributes.some((a) => a.key === 'velox.request_id' && a.value.stringValue === 'prop-1'))
  await eventually(() => server() ?? assert.fail('no SERVER span'), { what: 'the span', intervalMs: 25 })
  assert.notEqual(server()!.traceId, TRACE, 'the client trace was continued without the tracecontext propagator')
  assert.equal(server()!.parentSpanId || undefined, undefined)
  const started = logLines.find((l) => l.msg === 'tracing on: OpenTelemetry SDK started')
  assert.deepEqual(started?.propagators, ['baggage'])
  const warned = logLines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('unsupported OTEL_PROPAGATORS'))
  assert.deepEqual(warned?.ignored, ['b3'])
})

test('propagatorsFromEnv: unset is tracecontext,baggage; none turns both off; unknown values are warned about and ignored', async () => {
  const silent = createLogger('silent')
  assert.deepEqual(withPropagators(undefined, () => propagatorsFromEnv(silent)), { traceContext: true, baggage: true, names: ['tracecontext', 'baggage'] })
  assert.deepEqual(withPropagators('', () => propagatorsFromEnv(silent)), { traceContext: true, baggage: true, names: ['tracecontext', 'baggage'] })
  assert.deepEqual(withPropagators('tracecontext', () => propagatorsFromEnv(silent)), { traceContext: true, baggage: false, names: ['tracecontext'] })
  assert.deepEqual(withPropagators('none', () => propagatorsFromEnv(silent)), { traceContext: false, baggage: false, names: [] })
  const from = logLines.length
  const logger = capturingLogger()
  assert.deepEqual(withPropagators(' jaeger , tracecontext ', () => propagatorsFromEnv(logger)), { traceContext: true, baggage: false, names: ['tracecontext'] })
  assert.deepEqual(withPropagators('none,baggage', () => propagatorsFromEnv(logger)), { traceContext: false, baggage: false, names: [] })
  logger.flush()
  await eventually(() => {
    const lines = logLines.slice(from).map((l) => l.msg)
    assert.ok(lines.includes('unsupported OTEL_PROPAGATORS values (tracecontext, baggage, none): ignored'), JSON.stringify(lines))
    assert.ok(lines.includes('OTEL_PROPAGATORS lists none with other values: no propagation'), JSON.stringify(lines))
    return true
  }, { what: 'the warnings' })
})
