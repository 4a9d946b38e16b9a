/**
 * The sampling decision made before any span: it follows a valid client `traceparent`'s sampled
 * flag (parent-based), passes an unsampled trace context on unchanged, starts a new unsampled
 * trace otherwise, and agrees with the SDK's own tracer on every trace id.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import type { Sampler } from '@opentelemetry/sdk-trace'
import { DecidedIds, TraceSampling } from '../../../gateway/src/telemetry/sampling.ts'

// The API and trace SDK the gateway depends on (other versions sit at the repository's root for other packages).
const gatewayRequire = createRequire(new URL('../../../gateway/package.json', import.meta.url))
const { ROOT_CONTEXT, SpanKind } = gatewayRequire('@opentelemetry/api') as typeof import('@opentelemetry/api')
const { AlwaysOffSampler, AlwaysOnSampler, InMemorySpanExporter, ParentBasedSampler, RandomIdGenerator, SimpleSpanProcessor, TraceIdRatioBasedSampler, TracerProvider } =
  gatewayRequire('@opentelemetry/sdk-trace') as typeof import('@opentelemetry/sdk-trace')
assert.match(gatewayRequire.resolve('@opentelemetry/sdk-trace'), /\/gateway\/node_modules\//)

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

const sampling = (parentBased: boolean, root: Sampler): TraceSampling => new TraceSampling(parentBased, root, new DecidedIds(new RandomIdGenerator()))

test('parent-based: a valid parent decides by its sampled flag, whatever the ratio', () => {
  const s = sampling(true, new TraceIdRatioBasedSampler(0))
  assert.deepEqual(s.decide({ traceparent: `00-${TRACE}-${PARENT}-01` }), { sampled: true, traceId: TRACE })
  // Not sampled: the client's own context goes on unchanged (the gateway takes no part in the trace).
  assert.deepEqual(s.decide({ traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: 'vendor=abc,other=1' }), {
    sampled: false,
    propagate: ['traceparent', `00-${TRACE}-${PARENT}-00`, 'tracestate', 'vendor=abc,other=1'],
  })
  // A later version's extra fields are not passed on; its known fields are.
  assert.deepEqual(s.decide({ traceparent: `01-${TRACE}-${PARENT}-00-what-comes-next` }), { sampled: false, propagate: ['traceparent', `00-${TRACE}-${PARENT}-00`] })
  assert.equal(sampling(true, new AlwaysOnSampler()).decide({ traceparent: `00-${TRACE}-${PARENT}-00` }).sampled, false)
})

test('an invalid traceparent is ignored (and its tracestate with it): a new trace, decided by the root sampler', () => {
  const s = sampling(true, new AlwaysOffSampler())
  for (const bad of [
    `00-${'0'.repeat(32)}-${PARENT}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `ff-${TRACE}-${PARENT}-01`,
    `00-${TRACE}-${PARENT}-01-extra`,
    `00-${TRACE.toUpperCase()}-${PARENT}-01`,
    `00-${TRACE}-${PARENT}`,
    'garbage',
  ]) {
    const d = s.decide({ traceparent: bad, tracestate: 'vendor=abc' })
    assert.equal(d.sampled, false, bad)
    assert.ok(!d.sampled)
    assert.equal(d.propagate.length, 2, `${bad}: only a traceparent, no tracestate`)
    assert.equal(d.propagate[0], 'traceparent')
    const [, traceId, spanId, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(d.propagate[1]!) ?? assert.fail(`${bad}: ${d.propagate[1]}`)
    assert.notEqual(traceId, TRACE)
    assert.notEqual(spanId, '0'.repeat(16))
    assert.equal(flags, '00')
  }
  const on = sampling(true, new AlwaysOnSampler()).decide({ traceparent: 'garbage' })
  assert.ok(on.sampled && /^[0-9a-f]{32}$/.test(on.traceId))
})

test('without parent-based sampling the root sampler decides every trace, on its trace id', () => {
  const s = sampling(false, new TraceIdRatioBasedSampler(0))
  assert.equal(s.decide({ traceparent: `00-${TRACE}-${PARENT}-01` }).sampled, false)
  assert.deepEqual(sampling(false, new AlwaysOnSampler()).decide({ traceparent: `00-${TRACE}-${PARENT}-00` }), { sampled: true, traceId: TRACE })
})

test('a ratio of 10% samples about 10% of new traces', () => {
  const s = sampling(true, new TraceIdRatioBasedSampler(0.1))
  let sampled = 0
  for (let i = 0; i < 20_000; i++) if (s.decide({}).sampled) sampled++
  assert.ok(sampled > 1_600 && sampled < 2_400, `${sampled} of 20000`)
})

test('the decision is the SDK tracer\'s own: same sampler, same trace id, same outcome', () => {
  for (const parentBased of [true, false]) {
    const root = new TraceIdRatioBasedSampler(0.5)
    const ids = new DecidedIds(new RandomIdGenerator())
    const s = new TraceSampling(parentBased, root, ids)
    const exporter = new InMemorySpanExporter()
    const provider = new TracerProvider({ sampler: parentBased ? new ParentBasedSampler({ root }) : root, idGenerator: ids, spanProcessors: [new SimpleSpanProcessor({ exporter })] })
    const tracer = provider.getTracer('t')
    let recorded = 0
    for (let i = 0; i < 400; i++) {
      const d = s.decide({})
      // What the SDK decides for a root span given the same trace id.
      const span = ids.startSpan(tracer, 'x', { kind: SpanKind.SERVER }, ROOT_CONTEXT, d.sampled ? d.traceId : /^00-([0-9a-f]{32})-/.exec(d.propagate[1]!)![1]!)
      assert.equal(span.isRecording(), d.sampled)
      assert.equal(span.spanContext().traceId, d.sampled ? d.traceId : /^00-([0-9a-f]{32})-/.exec(d.propagate[1]!)![1]!)
      if (d.sampled) recorded++
      span.end()
    }
    assert.equal(exporter.getFinishedSpans().length, recorded)
    assert.ok(recorded > 120 && recorded < 280, `${recorded} of 400`)
    // Outside startSpan the generator is the SDK's random one again.
    assert.notEqual(ids.generateTraceId(), ids.generateTraceId())
  }
})

test('propagators: without tracecontext a client traceparent is not read and none is written; baggage goes on when chosen', () => {
  const baggageOnly = new TraceSampling(true, new AlwaysOffSampler(), new DecidedIds(new RandomIdGenerator()), { traceContext: false, baggage: true })
  // A sampled client parent would decide with tracecontext; here the root sampler (off) does.
  assert.deepEqual(baggageOnly.decide({ traceparent: `00-${TRACE}-${PARENT}-01`, baggage: 'k=v' }), { sampled: false, propagate: ['baggage', 'k=v'] })
  const none = new TraceSampling(true, new AlwaysOffSampler(), new DecidedIds(new RandomIdGenerator()), { traceContext: false, baggage: false })
  assert.deepEqual(none.decide({ traceparent: `00-${TRACE}-${PARENT}-01`, baggage: 'k=v' }), { sampled: false, propagate: [] })
  const both = new TraceSampling(true, new AlwaysOffSampler(), new DecidedIds(new RandomIdGenerator()), { traceContext: true, baggage: true })
  assert.deepEqual(both.decide({ traceparent: `00-${TRACE}-${PARENT}-00`, baggage: 'k=v' }), { sampled: false, propagate: ['traceparent', `00-${TRACE}-${PARENT}-00`, 'baggage', 'k=v'] })
  // Trace context alone (the constructor's default): baggage is not the gateway's to pass on.
  assert.deepEqual(sampling(true, new AlwaysOffSampler()).decide({ traceparent: `00-${TRACE}-${PARENT}-00`, baggage: 'k=v' }), { sampled: false, propagate: ['traceparent', `00-${TRACE}-${PARENT}-00`] })
})
