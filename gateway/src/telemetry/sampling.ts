/**
 * The sampling decision of a request, made before any span work: from the client's W3C
 * `traceparent` and the configured sampler alone. A request that is not sampled gets no span,
 * no context object and no injection: only the trace context it must pass on. With a valid
 * parent, that is the client's own `traceparent` and `tracestate`, unchanged (the gateway does
 * not take part in that trace, so the upstream's spans stay children of the client's); without
 * one, a new trace id with the sampled flag off, so that the upstream honours the decision too.
 *
 * The decision uses the same sampler objects the SDK's tracer is given, on the same trace id
 * (a sampled root span takes the id its decision was made on), so the two never disagree: the
 * standard samplers decide by the parent's sampled flag or by the trace id alone.
 */
import type { Attributes, Context, Link, Span, SpanOptions, Tracer } from '@opentelemetry/api'
import { otel } from './otel-api.ts'
import type { IdGenerator, Sampler } from '@opentelemetry/sdk-trace'

const { ROOT_CONTEXT, SamplingDecision, SpanKind } = otel

type IncomingHeaders = Record<string, string | string[] | undefined>

const NO_ATTRIBUTES: Attributes = Object.freeze({})
const NO_LINKS: Link[] = []

/**
 * W3C trace context `traceparent`, as the SDK's own propagator reads it: a version other than
 * ff, non-zero trace and parent ids, and nothing after the flags for version 00.
 */
const TRACEPARENT = /^\s?((?!ff)[\da-f]{2})-((?![0]{32})[\da-f]{32})-((?![0]{16})[\da-f]{16})-([\da-f]{2})(-.*)?\s?$/

export type SamplingResult =
  | { readonly sampled: true; readonly traceId: string }
  | { readonly sampled: false; readonly propagate: string[] }

/** The trace and span ids of the SDK's generator, except that a root span can be given the trace id its sampling was decided on. */
export class DecidedIds implements IdGenerator {
  readonly #random: IdGenerator
  #next: string | null = null

  constructor(random: IdGenerator) {
    this.#random = random
  }

  generateTraceId(): string {
    const next = this.#next
    if (next === null) return this.#random.generateTraceId()
    this.#next = null
    return next
  }

  generateSpanId(): string {
    return this.#random.generateSpanId()
  }

  /** `tracer.startSpan` with `traceId` as the trace id when the span is a root. */
  startSpan(tracer: Tracer, name: string, options: SpanOptions, parent: Context, traceId: string): Span {
    this.#next = traceId
    try {
      return tracer.startSpan(name, options, parent)
    } finally {
      this.#next = null
    }
  }
}

/** The propagators OTEL_PROPAGATORS chose (sdk.ts): W3C trace context, W3C baggage, either, both or none. */
export interface Propagators {
  readonly traceContext: boolean
  readonly baggage: boolean
}

export const TRACE_CONTEXT_ONLY: Propagators = Object.freeze({ traceContext: true, baggage: false })

export class TraceSampling {
  /** true: a valid parent's sampled flag decides (OTEL_TRACES_SAMPLER=parentbased_*); false: `root` decides every trace. */
  readonly parentBased: boolean
  /** Decides for traces that start here (and for every trace when not parent-based). */
  readonly root: Sampler
  readonly ids: DecidedIds
  /**
   * Without the trace-context propagator a client's `traceparent` is not read (every trace starts
   * here) and none goes upstream; with the baggage one, an unsampled request's `baggage` goes on unchanged.
   */
  readonly propagators: Propagators

  constructor(parentBased: boolean, root: Sampler, ids: DecidedIds, propagators: Propagators = TRACE_CONTEXT_ONLY) {
    this.parentBased = parentBased
    this.root = root
    this.ids = ids
    this.propagators = propagators
  }

  decide(headers: IncomingHeaders): SamplingResult {
    const traceContext = this.propagators.traceContext
    const header = traceContext ? headers.traceparent : undefined
    const parent = typeof header === 'string' ? TRACEPARENT.exec(header) : null
    if (parent !== null && !(parent[1] === '00' && parent[5] !== undefined)) {
      const traceId = parent[2]!
      const sampled = this.parentBased ? (parseInt(parent[4]!, 16) & 1) === 1 : this.#rootSamples(traceId)
      if (sampled) return { sampled, traceId }
      const tracestate = headers.tracestate
      const traceparent = `00-${traceId}-${parent[3]}-${parent[4]}`
      return { sampled, propagate: this.#baggage(headers, typeof tracestate === 'string' ? ['traceparent', traceparent, 'tracestate', tracestate] : ['traceparent', traceparent]) }
    }
    const traceId = this.ids.generateTraceId()
    if (this.#rootSamples(traceId)) return { sampled: true, traceId }
    return { sampled: false, propagate: this.#baggage(headers, traceContext ? ['traceparent', `00-${traceId}-${this.ids.generateSpanId()}-00`] : []) }
  }

  #baggage(headers: IncomingHeaders, out: string[]): string[] {
    if (this.propagators.baggage && typeof headers.baggage === 'string') out.push('baggage', headers.baggage)
    return out
  }

  #rootSamples(traceId: string): boolean {
    return this.root.shouldSample(ROOT_CONTEXT, traceId, '', SpanKind.SERVER, NO_ATTRIBUTES, NO_LINKS).decision === SamplingDecision.RECORD_AND_SAMPLED
  }
}
