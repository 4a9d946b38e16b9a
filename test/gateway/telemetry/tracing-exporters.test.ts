/**
 * The trace SDK as the gateway builds it, against real collectors on 127.0.0.1: OTLP
 * http/protobuf to an HTTP receiver, then OTLP over gRPC to a gRPC server; only the exporter of
 * the configured protocol is loaded. At a 0% ratio an unsampled request still passes trace
 * context upstream, and a client's sampled flag is honoured; prompt text is exported only with
 * captureContent.
 */
// npm test: a process of its own (it sets OTEL_* variables, installs a module hook and registers the global tracer)
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { activeTracing, SHUTDOWN_FLUSH_MS, startTracing } from '../../../gateway/src/telemetry/tracing.ts'
import { chatBody, post, startGateway, startRawUpstream, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'
import { recordResolvedModules } from '../../helpers/resolved-modules.ts'

const resolved = recordResolvedModules()

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const SPAN_NAME = 'POST /v1/chat/completions'
const exports: Array<{ contentType: string; body: Buffer }> = []
const upstreamSaw: Array<Record<string, string | string[] | undefined>> = []
let receiver: http.Server
let upstream: Awaited<ReturnType<typeof startRawUpstream>>
let gw: TestGateway

before(async () => {
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k]
  receiver = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    if (req.url === '/v1/traces') exports.push({ contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) })
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
  })
  receiver.listen(0, '127.0.0.1')
  await once(receiver, 'listening')
  upstream = await startRawUpstream((req, res) => {
    upstreamSaw.push(req.headers)
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"c1","object":"chat.completion","model":"m1","choices":[]}')
  })
  gw = await startGateway({ upstreams: [{ name: 'u', url: upstream.url, models: ['m1'], pool: { warm: 0 } }], routing: { health: { intervalMs: 0 } } })
})

after(async () => {
  await gw?.close()
  await upstream?.close()
  await activeTracing()?.shutdown()
  receiver?.close()
})

async function request(id: string, headers: Record<string, string> = {}): Promise<Record<string, string | string[] | undefined>> {
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'm1' }), { 'x-request-id': id, ...headers })
  assert.equal(res.status, 200)
  await res.arrayBuffer()
  return upstreamSaw.find((h) => h['x-request-id'] === id) ?? assert.fail(`${id} never reached the upstream`)
}

test('config keys over the variables; http/protobuf at a 0% ratio: unsampled requests pass trace context on, a sampled client parent is recorded', async () => {
  // The config's keys win over the variables: nothing listens on the variable's port.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = 'http://127.0.0.1:1'
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'
  process.env.OTEL_TRACES_SAMPLER = 'always_on'
  process.env.OTEL_BSP_SCHEDULE_DELAY = '20'
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
  const tracing = await startTracing({ endpoint, protocol: 'http/protobuf', sampleRatio: 0, serviceName: 'velox-proto-test', captureContent: false }, createLogger('silent'))
  assert.ok(tracing)

  // A new trace, not sampled: a fresh trace id with the sampled flag off goes upstream.
  const fresh = await request('fresh-1')
  assert.match(String(fresh.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
  assert.equal(fresh.tracestate, undefined)
  // The client's unsampled context goes on as the client sent it.
  const unsampled = await request('unsampled-1', { traceparent: `00-${TRACE}-b7ad6b7169203331-00`, tracestate: 'vendor=abc' })
  assert.equal(unsampled.traceparent, `00-${TRACE}-b7ad6b7169203331-00`)
  assert.equal(unsampled.tracestate, 'vendor=abc')
  // The client's sampled flag wins over the ratio: the request is recorded, its attempt span is the upstream's parent.
  const sampled = await request('sampled-1', { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` })
  const [, spanId] = /^00-0af7651916cd43dd8448eb211c80319c-([0-9a-f]{16})-01$/.exec(String(sampled.traceparent)) ?? assert.fail(String(sampled.traceparent))
  assert.notEqual(spanId, '00f067aa0ba902b7')

  await eventually(() => exports.length > 0 || assert.fail('no export'), { what: 'an OTLP export', intervalMs: 20 })
  await tracing.shutdown()
  assert.ok(exports.every((e) => e.contentType === 'application/x-protobuf'), exports.map((e) => e.contentType).join())
  const all = Buffer.concat(exports.map((e) => e.body))
  // Protobuf carries ids as raw bytes and strings as UTF-8.
  assert.ok(all.includes(Buffer.from(TRACE, 'hex')), 'the sampled trace was exported')
  assert.ok(all.includes(Buffer.from(spanId!, 'hex')), 'with the attempt span the upstream saw')
  assert.ok(all.includes(Buffer.from(SPAN_NAME)))
  assert.ok(all.includes(Buffer.from('velox-proto-test')), 'service name in the resource')
  assert.equal(all.indexOf(Buffer.from('fresh-1')), -1, 'an unsampled request was exported')
  assert.equal(all.indexOf(Buffer.from('unsampled-1')), -1, 'an unsampled request was exported')
  assert.equal(all.indexOf(Buffer.from('hello there')), -1, 'prompt text exported without captureContent')

  const otel = [...new Set(resolved.filter((u) => u.includes('/@opentelemetry/')).map((u) => /\/@opentelemetry\/([^/]+)\//.exec(u)![1]!))]
  assert.ok(otel.includes('exporter-trace-otlp-proto'))
  for (const unused of ['exporter-trace-otlp-http', 'exporter-trace-otlp-grpc', 'otlp-grpc-exporter-base', 'sdk-node', 'context-async-hooks', 'instrumentation']) {
    assert.ok(!otel.includes(unused), `${unused} was loaded for http/protobuf`)
  }
})

test('grpc: spans reach a gRPC collector\'s TraceService/Export; captureContent records the prompt', async () => {
  const received: Buffer[] = []
  const server = new grpc.Server()
  const raw = (b: Buffer): Buffer => b
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    },
    {
      // An empty ExportTraceServiceResponse: full success.
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        received.push(call.request)
        callback(null, Buffer.alloc(0))
      },
    },
  )
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
  try {
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'grpc'
    process.env.OTEL_TRACES_SAMPLER = 'always_on'
    process.env.OTEL_SERVICE_NAME = 'velox-grpc-test'
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment.name=grpc-test'
    const tracing = await startTracing({ captureContent: true }, createLogger('silent'))
    assert.ok(tracing)
    const saw = await request('grpc-1')
    const [, traceId] = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(String(saw.traceparent)) ?? assert.fail(String(saw.traceparent))
    await eventually(() => received.length > 0 || assert.fail('no export'), { what: 'a gRPC export', intervalMs: 20 })
    await tracing.shutdown()
    const all = Buffer.concat(received)
    assert.ok(all.includes(Buffer.from(traceId!, 'hex')))
    assert.ok(all.includes(Buffer.from('grpc-1')), 'velox.request_id on the span')
    assert.ok(all.includes(Buffer.from('velox-grpc-test')), 'OTEL_SERVICE_NAME')
    assert.ok(all.includes(Buffer.from('deployment.environment.name')) && all.includes(Buffer.from('grpc-test')), 'OTEL_RESOURCE_ATTRIBUTES')
    assert.ok(all.includes(Buffer.from('gen_ai.input.messages')) && all.includes(Buffer.from('hello there')), 'captureContent: the messages on the span')
  } finally {
    server.forceShutdown()
  }
})

test('stopping with an unreachable collector waits SHUTDOWN_FLUSH_MS for the last spans, not the exporter\'s whole timeout', async () => {
  // A collector that accepts connections and never answers: the export can only end by the
  // exporter's own timeout (5 s), so nothing but the flush deadline can end the stop sooner.
  const sockets = new Set<net.Socket>()
  const blackHole = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  blackHole.listen(0, '127.0.0.1')
  await once(blackHole, 'listening')
  const { port } = blackHole.address() as AddressInfo
  process.env.OTEL_EXPORTER_OTLP_TIMEOUT = '5000'
  // The span stays queued until the stop flushes it (an earlier test set a 20 ms schedule).
  process.env.OTEL_BSP_SCHEDULE_DELAY = '600000'
  try {
    const tracing = await startTracing({ endpoint: `http://127.0.0.1:${port}`, protocol: 'http/json', sampleRatio: 1, captureContent: false }, createLogger('silent'))
    assert.ok(tracing)
    await request('unreachable-1')
    const started = performance.now()
    await assert.rejects(tracing.shutdown(), /spans not exported within \d+ ms of the stop were dropped/)
    const took = performance.now() - started
    assert.ok(took >= SHUTDOWN_FLUSH_MS - 50 && took < 4_500, `stopping took ${Math.round(took)} ms`)
    assert.equal(activeTracing(), null)
    assert.ok(sockets.size > 0, 'the exporter was still waiting on the collector')
  } finally {
    blackHole.close()
    // The exporter's request ends at its own timeout; the test process does not wait for it.
    for (const socket of sockets) socket.unref()
  }
})
