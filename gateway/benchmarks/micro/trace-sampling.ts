/**
 * What tracing costs an unsampled request (99% of them at a 1% ratio), per request, in one
 * process and interleaved so that machine load hits both alike:
 *
 * - `span first`: what the request path did before sampling was decided first: start a SERVER span
 *   (non-recording once the sampler says no), set it on a context, inject `traceparent` for one
 *   upstream attempt, end the span.
 * - `decide first`: TraceSampling.decide(), what it does now: the trace context to forward, no span.
 *
 * Each with and without a client `traceparent` (unsampled flag), on the gateway's own SDK objects
 * (parentbased_traceidratio at 0.01).
 *
 *   npx node gateway/benchmarks/micro/trace-sampling.ts [--rounds N]
 */
import { propagation, ROOT_CONTEXT, SpanKind, trace, type Context, type TextMapGetter } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace'
import { DecidedIds, TraceSampling } from '../../src/telemetry/sampling.ts'

type Headers = Record<string, string | string[] | undefined>

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1] ?? 0) || 15
const OPS = 20_000

const root = new TraceIdRatioBasedSampler(0.01)
const ids = new DecidedIds(new RandomIdGenerator())
const provider = new TracerProvider({ sampler: new ParentBasedSampler({ root }), idGenerator: ids })
const tracer = provider.getTracer('bench')
propagation.setGlobalPropagator(new W3CTraceContextPropagator())
const sampling = new TraceSampling(true, root, ids)

const getter: TextMapGetter<Headers> = { keys: (c) => Object.keys(c), get: (c, k) => c[k] }
const setter = { set: (carrier: string[], key: string, value: string): void => void carrier.push(key, value) }

let sink = 0
function spanFirst(headers: Headers): void {
  const parent: Context = headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers, getter)
  const span = tracer.startSpan('POST /v1/chat/completions', { kind: SpanKind.SERVER, startTime: performance.now() }, parent)
  const context = trace.setSpan(parent, span)
  if (span.isRecording()) sink++
  const carrier: string[] = []
  propagation.inject(context, carrier, setter)
  sink += carrier.length
  span.end(performance.now())
}

function decideFirst(headers: Headers): void {
  const d = sampling.decide(headers)
  sink += d.sampled ? 1 : d.propagate.length
}

/** ns per call of `fn` over OPS calls. */
function time(fn: (h: Headers) => void, headers: Headers): number {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < OPS; i++) fn(headers)
  return Number(process.hrtime.bigint() - t0) / OPS
}

const cases: Array<[string, Headers]> = [
  ['no traceparent', {}],
  ['client traceparent, not sampled', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', tracestate: 'vendor=abc' }],
]
const variants: Array<[string, (h: Headers) => void]> = [['span first', spanFirst], ['decide first', decideFirst]]

for (const [, headers] of cases) for (const [, fn] of variants) time(fn, headers) // warm-up
const results = new Map<string, number[]>()
for (let r = 0; r < rounds; r++) {
  for (const [c, headers] of cases) {
    for (const [v, fn] of variants) {
      const key = `${c} | ${v}`
      if (!results.has(key)) results.set(key, [])
      results.get(key)!.push(time(fn, headers))
    }
  }
}

const median = (xs: number[]): number => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log(`unsampled request, ns per request (median of ${rounds} rounds of ${OPS}; min in brackets)`)
for (const [c] of cases) {
  const a = results.get(`${c} | span first`)!
  const b = results.get(`${c} | decide first`)!
  console.log(`  ${c.padEnd(34)} span first ${median(a).toFixed(0).padStart(6)} (${Math.min(...a).toFixed(0)})   decide first ${median(b).toFixed(0).padStart(6)} (${Math.min(...b).toFixed(0)})   ${(median(a) / median(b)).toFixed(1)}x`)
}
if (sink === -1) console.log(sink)
