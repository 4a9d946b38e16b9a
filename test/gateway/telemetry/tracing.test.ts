/**
 * Tracing end to end: the official SDK configured by the standard OTEL_* variables alone, spans
 * exported over OTLP http/json to a real HTTP receiver on 127.0.0.1, W3C context in from the
 * client and out to each upstream attempt.
 */
// npm test: a process of its own (it sets OTEL_* variables for the whole file and registers the global tracer)
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { activeTracing, startTracing, tracingWanted } from '../../../gateway/src/telemetry/tracing.ts'
import { post, startGateway, startRawUpstream, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'
import { otlpAttributes, startOtlpJsonReceiver, type OtlpReceiver, type OtlpSpan } from '../../helpers/otlp-receiver.ts'

let receiver: OtlpReceiver
let spans: OtlpSpan[] = []
let resources: Array<Record<string, unknown>> = []
let gw: TestGateway
const upstreamSaw: Array<Record<string, string | string[] | undefined>> = []
let failing: Awaited<ReturnType<typeof startRawUpstream>>
let good: Awaited<ReturnType<typeof startRawUpstream>>

const attrs = otlpAttributes

const PROMPT = 'the secret prompt text'
const SSE = [
  'data: {"id":"c1","object":"chat.completion.chunk","model":"served-model-v2","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","model":"served-model-v2","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n',
  'data: {"id":"c1","object":"chat.completion.chunk","model":"served-model-v2","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}\n\n',
  'data: [DONE]\n\n',
]

before(async () => {
  receiver = await startOtlpJsonReceiver()
  spans = receiver.spans
  resources = receiver.resources
  // The standard variables, and nothing in the gateway config.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
  process.env.OTEL_TRACES_SAMPLER = 'parentbased_always_on'
  process.env.OTEL_SERVICE_NAME = 'velox-under-test'
  process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment.name=test,cloud.region=local-1'
  process.env.OTEL_BSP_SCHEDULE_DELAY = '50'
  assert.ok(await startTracing({ captureContent: false }, createLogger('silent')))

  failing = await startRawUpstream((req, res) => {
    upstreamSaw.push({ ...req.headers, upstream: 'failing' })
    req.resume()
    res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"overloaded"}}')
  })
  good = await startRawUpstream((req, res) => {
    upstreamSaw.push({ ...req.headers, upstream: 'good' })
    req.resume()
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    for (const e of SSE) res.write(e)
    res.end()
  })
  gw = await startGateway({
    upstreams: [
      { name: 'failing', url: failing.url, models: ['m1'], priority: 0, pool: { warm: 0 } },
      { name: 'good', url: good.url, models: ['m1'], priority: 1, pool: { warm: 0 } },
    ],
    routing: { health: { intervalMs: 0 } },
  })
})

after(async () => {
  await gw?.close()
  await failing?.close()
  await good?.close()
  await activeTracing()?.shutdown()
  receiver?.close()
})

async function waitForSpans(pred: () => boolean): Promise<void> {
  await eventually(() => pred() || assert.fail(`spans never arrived; got ${spans.map((s) => s.name).join(', ')}`), { what: 'spans', intervalMs: 25 })
}

test('a client traceparent continues into a SERVER span; each attempt is a CLIENT span whose context goes upstream', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const clientSpan = '00f067aa0ba902b7'
  const res = await post(
    `${gw.url}/v1/chat/completions`,
    JSON.stringify({ model: 'm1', stream: true, stream_options: { include_usage: true }, max_tokens: 32, temperature: 0.2, messages: [{ role: 'user', content: PROMPT }] }),
    { traceparent: `00-${traceId}-${clientSpan}-01`, tracestate: 'vendor=abc', baggage: 'tenant.tier=gold', 'x-request-id': 'client-req-1' },
  )
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('x-request-id'), 'client-req-1')
  await res.arrayBuffer()
  await waitForSpans(() => spans.some((s) => s.kind === 2 && s.traceId === traceId))

  const server = spans.find((s) => s.kind === 2 && s.traceId === traceId)!
  assert.equal(server.parentSpanId, clientSpan)
  assert.equal(server.name, 'POST /v1/chat/completions')
  const sa = attrs(server)
  assert.equal(sa['gen_ai.operation.name'], 'chat')
  assert.equal(sa['gen_ai.request.model'], 'm1')
  assert.equal(sa['gen_ai.response.model'], 'served-model-v2')
  assert.equal(sa['gen_ai.request.max_tokens'], 32)
  assert.equal(sa['gen_ai.request.temperature'], 0.2)
  assert.equal(sa['gen_ai.usage.input_tokens'], 7)
  assert.equal(sa['gen_ai.usage.output_tokens'], 2)
  assert.equal(sa['http.response.status_code'], 200)
  assert.equal(sa['velox.request_id'], 'client-req-1')
  assert.equal(sa['velox.tenant'], 'default')
  assert.equal(sa['velox.upstream'], 'good')
  assert.ok(typeof sa['velox.cache'] === 'string')
  const ttft = server.events?.find((e) => e.name === 'gen_ai.first_token')
  assert.ok(ttft, 'no first-token event')
  assert.ok((attrs(ttft)['gen_ai.server.time_to_first_token'] as number) > 0)

  const clients = spans.filter((s) => s.kind === 3 && s.traceId === traceId && s.parentSpanId === server.spanId)
  assert.equal(clients.length, 2, 'one CLIENT span per attempt')
  const byUpstream = Object.fromEntries(clients.map((c) => [attrs(c)['velox.upstream'] as string, c]))
  const failed = byUpstream.failing!
  const ok = byUpstream.good!
  assert.equal(failed.status?.code, 2)
  assert.equal(attrs(failed)['http.response.status_code'], 503)
  assert.equal(attrs(ok)['gen_ai.provider.name'], 'openai_compatible')
  assert.equal(attrs(ok)['gen_ai.request.model'], 'm1')
  assert.equal(attrs(ok)['server.address'], '127.0.0.1')
  assert.equal(ok.name, 'chat m1')

  const seen = upstreamSaw.filter((h) => h['x-request-id'] === 'client-req-1')
  assert.equal(seen.length, 2)
  for (const h of seen) {
    const span = h.upstream === 'good' ? ok : failed
    assert.equal(h.traceparent, `00-${traceId}-${span.spanId}-01`, 'the upstream got its attempt span as parent')
    assert.equal(h.tracestate, 'vendor=abc')
    // OTEL_PROPAGATORS unset: tracecontext,baggage.
    assert.equal(h.baggage, 'tenant.tier=gold')
  }
  assert.ok(!JSON.stringify(spans).includes(PROMPT), 'prompt text reached a span without captureContent')
  assert.equal(sa['gen_ai.output.messages'], undefined, 'completion recorded without captureContent')
  assert.ok(!JSON.stringify(spans).includes('Hel'), 'completion text reached a span without captureContent')
  const resource = resources.at(-1)!
  assert.equal(resource['service.name'], 'velox-under-test')
  assert.equal(resource['deployment.environment.name'], 'test')
})

test('without a client id or traceparent: a generated id, returned and sent upstream; a new trace', async () => {
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }] }), { 'x-request-id': 'bad id with spaces' })
  await res.arrayBuffer()
  const id = res.headers.get('x-request-id')!
  assert.match(id, /^[0-9a-f-]{36}$/)
  assert.equal(upstreamSaw.at(-1)!['x-request-id'], id)
  await waitForSpans(() => spans.some((s) => s.kind === 2 && attrs(s)['velox.request_id'] === id))
  const server = spans.find((s) => s.kind === 2 && attrs(s)['velox.request_id'] === id)!
  assert.equal(server.parentSpanId ?? '', '')
})

test('an error the gateway answers itself carries the request id too', async () => {
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'no-such-model', messages: [] }), { 'x-request-id': 'err-1' })
  assert.equal(res.status, 404)
  assert.equal(res.headers.get('x-request-id'), 'err-1')
})

test('tracing is wanted only with an endpoint or enabled: true, never when disabled', () => {
  assert.equal(tracingWanted({ captureContent: false }, {}), false)
  assert.equal(tracingWanted({ captureContent: false }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), true)
  assert.equal(tracingWanted({ captureContent: false }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), true)
  assert.equal(tracingWanted({ captureContent: false }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), false)
  assert.equal(tracingWanted({ captureContent: false }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), false)
  assert.equal(tracingWanted({ enabled: false, captureContent: false }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), false)
  assert.equal(tracingWanted({ enabled: true, captureContent: false }, {}), true)
})

test('a parent that was not sampled: no span is recorded, the trace context still goes upstream', async () => {
  const traceId = '0af7651916cd43dd8448eb211c80319c'
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }] }), { traceparent: `00-${traceId}-b7ad6b7169203331-00`, 'x-request-id': 'unsampled-1' })
  await res.arrayBuffer()
  const seen = upstreamSaw.filter((h) => h['x-request-id'] === 'unsampled-1')
  assert.ok(seen.length >= 1)
  for (const h of seen) assert.match(String(h.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`))
  // Spans of a later, sampled request arrive; none of the unsampled trace ever does.
  const marker = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'm1', messages: [] }), { 'x-request-id': 'marker-1' })
  await marker.arrayBuffer()
  await waitForSpans(() => spans.some((s) => s.kind === 2 && attrs(s)['velox.request_id'] === 'marker-1'))
  assert.equal(spans.filter((s) => s.traceId === traceId).length, 0)
})

test('a hedged request: one CLIENT span per attempt, each upstream gets its own as parent; the loser ends cancelled', async () => {
  const hedgeSaw: Array<{ upstream: string; traceparent: string }> = []
  const slow = await startRawUpstream((req, res) => {
    hedgeSaw.push({ upstream: 'slow', traceparent: String(req.headers.traceparent) })
    req.resume()
    // Answers only long after the hedge has won; the gateway cancels it first.
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'text/event-stream' }).end(SSE.join('')), 5_000)
    res.on('close', () => clearTimeout(timer))
  })
  const fast = await startRawUpstream((req, res) => {
    hedgeSaw.push({ upstream: 'fast', traceparent: String(req.headers.traceparent) })
    req.resume()
    res.writeHead(200, { 'content-type': 'text/event-stream' }).end(SSE.join(''))
  })
  const hedged = await startGateway({
    upstreams: [
      { name: 'slow', url: slow.url, models: ['m1'], pool: { warm: 0 } },
      { name: 'fast', url: fast.url, models: ['m1'], pool: { warm: 0 } },
    ],
    routing: { balancer: 'weighted-round-robin', hedge: { enabled: true, delayMs: 30 }, retry: { budgetMinPerSecond: 100 }, health: { intervalMs: 0 } },
  })
  try {
    const traceId = 'a3ce929d0e0e47364bf92f3577b34da6'
    // Round robin: one of the two requests starts on the slow upstream and is hedged to the fast one.
    for (let i = 0; i < 2; i++) {
      const res = await post(`${hedged.url}/v1/chat/completions`, JSON.stringify({ model: 'm1', stream: true, messages: [{ role: 'user', content: 'hi' }] }), { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': `hedged-${i}` })
      assert.equal(res.status, 200)
      await res.arrayBuffer()
    }
    const hedgedServer = (): OtlpSpan | undefined => spans.find((s) => s.kind === 2 && s.traceId === traceId && spans.filter((c) => c.kind === 3 && c.parentSpanId === s.spanId).length === 2)
    await waitForSpans(() => {
      const server = hedgedServer()
      return server !== undefined && spans.filter((c) => c.kind === 3 && c.parentSpanId === server.spanId && c.status !== undefined).length === 2
    })
    const server = hedgedServer()!
    const attempts = spans.filter((c) => c.kind === 3 && c.parentSpanId === server.spanId)
    const byUpstream = Object.fromEntries(attempts.map((c) => [attrs(c)['velox.upstream'] as string, c]))
    assert.equal(attrs(byUpstream.slow!)['error.type'], 'cancelled')
    assert.equal(byUpstream.slow!.status?.code, 2)
    assert.equal(attrs(byUpstream.fast!)['http.response.status_code'], 200)
    assert.deepEqual(attempts.map((c) => attrs(c)['velox.attempt']).sort(), [1, 2])
    for (const [name, span] of Object.entries(byUpstream)) {
      assert.ok(hedgeSaw.some((h) => h.upstream === name && h.traceparent === `00-${traceId}-${span.spanId}-01`), `${name} did not get its attempt span as parent`)
    }
  } finally {
    await hedged.close()
    await slow.close()
    await fast.close()
  }
})
