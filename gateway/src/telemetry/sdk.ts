/**
 * The OpenTelemetry trace SDK, built from the standard variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/) as
 * `@opentelemetry/sdk-node` builds its tracer provider, without the rest of what that package
 * loads (metrics and logs SDKs, every exporter of every signal, instrumentation hooks, a context
 * manager): only the trace SDK and the one OTLP exporter the protocol names. Imported lazily by
 * tracing.ts, never on the request path.
 *
 * Read here: OTEL_TRACES_EXPORTER (otlp, console, none), OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL
 * (http/protobuf, http/json, grpc), OTEL_TRACES_SAMPLER[_ARG], OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, OTEL_SPAN_*_LIMIT / OTEL_ATTRIBUTE_*_LIMIT. The exporters
 * read their own (OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, TLS).
 * OTEL_PROPAGATORS: tracecontext (W3C trace context, which the gateway's sampling decision reads),
 * baggage (W3C baggage), none.
 */
import type { TextMapPropagator, Tracer } from '@opentelemetry/api'
import { otel } from './otel-api.ts'
import { CompositePropagator, getNumberFromEnv, getStringFromEnv, getStringListFromEnv, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'
import { defaultResource, detectResources, envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector } from '@opentelemetry/resources'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  RandomIdGenerator,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace'
import type { Logger } from './logger.ts'
import { DecidedIds, TraceSampling, type Propagators } from './sampling.ts'

const { propagation, trace } = otel

export interface RunningSdk {
  readonly tracer: Tracer
  readonly sampling: TraceSampling
  /** What was configured, for the startup log line. */
  readonly sampler: string
  readonly protocol: string
  readonly exporters: string[]
  /** OTEL_PROPAGATORS as applied: tracecontext, baggage (empty: none). */
  readonly propagators: string[]
  shutdown(): Promise<void>
}

type Protocol = 'http/protobuf' | 'http/json' | 'grpc'

/** OTEL_TRACES_SAMPLER as the SDK specification defines it; unset: parentbased_always_on. */
export function samplerFromEnv(logger: Logger): { parentBased: boolean; root: Sampler; name: string } {
  const name = getStringFromEnv('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on'
  const ratio = (): number => {
    const r = getNumberFromEnv('OTEL_TRACES_SAMPLER_ARG')
    if (r === undefined || r < 0 || r > 1) {
      logger.warn({ OTEL_TRACES_SAMPLER_ARG: process.env.OTEL_TRACES_SAMPLER_ARG }, 'OTEL_TRACES_SAMPLER_ARG is not a ratio in [0, 1]: sampling every trace')
      return 1
    }
    return r
  }
  switch (name) {
    case 'always_on': return { parentBased: false, root: new AlwaysOnSampler(), name }
    case 'always_off': return { parentBased: false, root: new AlwaysOffSampler(), name }
    case 'traceidratio': return { parentBased: false, root: new TraceIdRatioBasedSampler(ratio()), name }
    case 'parentbased_always_on': return { parentBased: true, root: new AlwaysOnSampler(), name }
    case 'parentbased_always_off': return { parentBased: true, root: new AlwaysOffSampler(), name }
    case 'parentbased_traceidratio': return { parentBased: true, root: new TraceIdRatioBasedSampler(ratio()), name }
    default:
      logger.warn({ OTEL_TRACES_SAMPLER: name }, 'unknown OTEL_TRACES_SAMPLER: using parentbased_always_on')
      return { parentBased: true, root: new AlwaysOnSampler(), name: 'parentbased_always_on' }
  }
}

export function otlpProtocol(logger: Logger): Protocol {
  const protocol = (getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL'))?.trim() || 'http/protobuf'
  if (protocol === 'http/protobuf' || protocol === 'http/json' || protocol === 'grpc') return protocol
  logger.warn({ protocol }, 'unsupported OTLP traces protocol: using http/protobuf')
  return 'http/protobuf'
}

const KNOWN_PROPAGATORS = ['tracecontext', 'baggage', 'none']

/**
 * OTEL_PROPAGATORS as the SDK specification defines it: a list of `tracecontext`, `baggage`, or
 * `none`; unset or empty: `tracecontext,baggage`. Other values (`b3`, `jaeger`, `xray`...) are not
 * supported: a warning names them and they are ignored, as the specification asks of unknown values.
 */
export function propagatorsFromEnv(logger: Logger): Propagators & { names: string[] } {
  const listed = [...new Set(getStringListFromEnv('OTEL_PROPAGATORS') ?? [])].filter((n) => n !== '')
  const names = listed.length === 0 ? ['tracecontext', 'baggage'] : listed
  const unknown = names.filter((n) => !KNOWN_PROPAGATORS.includes(n))
  if (unknown.length > 0) logger.warn({ OTEL_PROPAGATORS: process.env.OTEL_PROPAGATORS, ignored: unknown }, 'unsupported OTEL_PROPAGATORS values (tracecontext, baggage, none): ignored')
  if (names.includes('none')) {
    if (names.length > 1) logger.warn({ OTEL_PROPAGATORS: process.env.OTEL_PROPAGATORS }, 'OTEL_PROPAGATORS lists none with other values: no propagation')
    return { traceContext: false, baggage: false, names: [] }
  }
  const traceContext = names.includes('tracecontext')
  const baggage = names.includes('baggage')
  return { traceContext, baggage, names: names.filter((n) => n === 'tracecontext' || n === 'baggage') }
}

/** The OTLP exporter of one protocol; only its package is loaded. */
async function otlpExporter(protocol: Protocol): Promise<SpanExporter> {
  switch (protocol) {
    case 'http/json': return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
    case 'grpc': return new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter()
    case 'http/protobuf': return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter()
  }
}

function nonNegative(name: string): number | undefined {
  const v = getNumberFromEnv(name)
  return v !== undefined && v >= 0 ? v : undefined
}

/** Builds and registers the SDK from process.env (where startTracing wrote the config's keys). */
export async function startSdk(tracerName: string, logger: Logger): Promise<RunningSdk> {
  const protocol = otlpProtocol(logger)
  let names = [...new Set(getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? [])]
  if (names.length === 0) names = ['otlp']
  const processors: SpanProcessor[] = []
  const exporters: string[] = []
  for (const name of names) {
    if (name === 'otlp') {
      processors.push(new BatchSpanProcessor({
        exporter: await otlpExporter(protocol),
        maxQueueSize: nonNegative('OTEL_BSP_MAX_QUEUE_SIZE'),
        scheduledDelayMillis: nonNegative('OTEL_BSP_SCHEDULE_DELAY'),
        exportTimeoutMillis: nonNegative('OTEL_BSP_EXPORT_TIMEOUT'),
        maxExportBatchSize: nonNegative('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
      }))
    } else if (name === 'console') {
      processors.push(new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }))
    } else {
      logger.warn({ OTEL_TRACES_EXPORTER: name }, 'unsupported trace exporter (otlp, console, none): ignored')
      continue
    }
    exporters.push(name)
  }
  const sampler = samplerFromEnv(logger)
  const ids = new DecidedIds(new RandomIdGenerator())
  // Host, OS, process and service instance as sdk-node detects them; OTEL_SERVICE_NAME and
  // OTEL_RESOURCE_ATTRIBUTES over them.
  const resource = defaultResource().merge(detectResources({ detectors: [hostDetector, osDetector, processDetector, serviceInstanceIdDetector, envDetector] }))
  const provider = new TracerProvider({
    resource,
    spanProcessors: processors,
    sampler: sampler.parentBased ? new ParentBasedSampler({ root: sampler.root }) : sampler.root,
    idGenerator: ids,
    spanLimits: {
      attributeCountLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_COUNT_LIMIT'),
      attributeValueLengthLimit: getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT') ?? getNumberFromEnv('OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT'),
      eventCountLimit: getNumberFromEnv('OTEL_SPAN_EVENT_COUNT_LIMIT'),
      linkCountLimit: getNumberFromEnv('OTEL_SPAN_LINK_COUNT_LIMIT'),
      attributePerEventCountLimit: getNumberFromEnv('OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_PER_EVENT_COUNT_LIMIT'),
      attributePerLinkCountLimit: getNumberFromEnv('OTEL_LINK_ATTRIBUTE_COUNT_LIMIT') ?? getNumberFromEnv('OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT'),
    },
  })
  // Registered globally, as sdk-node does, so that anything else using the API reports here too.
  trace.setGlobalTracerProvider(provider)
  const propagators = propagatorsFromEnv(logger)
  const chosen: TextMapPropagator[] = []
  if (propagators.traceContext) chosen.push(new W3CTraceContextPropagator())
  if (propagators.baggage) chosen.push(new W3CBaggagePropagator())
  // None chosen: the API's own no-op propagator stays (nothing read, nothing written).
  if (chosen.length > 0) propagation.setGlobalPropagator(new CompositePropagator({ propagators: chosen }))
  return {
    tracer: provider.getTracer(tracerName),
    sampling: new TraceSampling(sampler.parentBased, sampler.root, ids, { traceContext: propagators.traceContext, baggage: propagators.baggage }),
    sampler: sampler.name,
    propagators: propagators.names,
    protocol,
    exporters,
    shutdown: async () => {
      await provider.shutdown()
      trace.disable()
      propagation.disable()
    },
  }
}
