/**
 * OpenTelemetry tracing. The request path touches only `@opentelemetry/api`, and only when
 * tracing is on: `activeTracer()` is null otherwise, and a null check is all a request pays.
 * The SDK (`@opentelemetry/sdk-node`) is imported lazily, once, at startup, when the standard
 * variables or the config ask for it; it reads the rest of its configuration from the standard
 * `OTEL_*` variables (exporter protocol, sampler, resource attributes, batch sizes...).
 */
import { trace, type Tracer } from '@opentelemetry/api'
import type { Logger } from './logger.ts'
import type { TelemetryConfig } from './config.ts'

export const TRACER_NAME = 'velox-gateway'
const DEFAULT_SERVICE_NAME = 'velox-gateway'

export interface Tracing {
  readonly tracer: Tracer
  /** Prompt and completion text may be recorded (opt-in; off by default). */
  readonly captureContent: boolean
  shutdown(): Promise<void>
}

let active: Tracing | null = null

/** The tracer of the running SDK, or null when tracing is off. */
export function activeTracing(): Tracing | null {
  return active
}

type TracingConfig = TelemetryConfig['tracing']

/** Whether tracing is on: `enabled` in config decides when set, else an OTLP endpoint variable. */
export function tracingWanted(config: TracingConfig, env: NodeJS.ProcessEnv): boolean {
  if (config.enabled === false) return false
  if (/^true$/i.test(env.OTEL_SDK_DISABLED ?? '')) return false
  if ((env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim()).includes('none')) return false
  return config.enabled === true || config.endpoint !== undefined || !!env.OTEL_EXPORTER_OTLP_ENDPOINT || !!env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
}

/**
 * The variables the SDK reads, with the config's keys written over them: the SDK has one way
 * to be configured, and the config is a shorthand for the standard variables.
 */
export function sdkEnvironment(config: TracingConfig, env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  if (config.endpoint !== undefined) out.OTEL_EXPORTER_OTLP_ENDPOINT = config.endpoint
  if (config.protocol !== undefined) out.OTEL_EXPORTER_OTLP_PROTOCOL = config.protocol
  if (config.sampleRatio !== undefined) {
    out.OTEL_TRACES_SAMPLER = 'parentbased_traceidratio'
    out.OTEL_TRACES_SAMPLER_ARG = String(config.sampleRatio)
  }
  if (config.serviceName !== undefined) out.OTEL_SERVICE_NAME = config.serviceName
  else if (!env.OTEL_SERVICE_NAME) out.OTEL_SERVICE_NAME = DEFAULT_SERVICE_NAME
  return out
}

/** Starts the SDK when tracing is wanted; null (and nothing loaded) otherwise. Call once, at startup. */
export async function startTracing(config: TracingConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | null> {
  if (active !== null) return active
  if (!tracingWanted(config, env)) return null
  Object.assign(env, sdkEnvironment(config, env))
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  // Traces only: the gateway's metrics are Prometheus's, its logs pino's; no auto-instrumentation
  // (the gateway makes its own spans, with GenAI attributes, at a fraction of the cost).
  const sdk = new NodeSDK({ instrumentations: [], metricReaders: [], logRecordProcessors: [] })
  sdk.start()
  const tracing: Tracing = {
    tracer: trace.getTracer(TRACER_NAME),
    captureContent: config.captureContent,
    shutdown: async () => {
      active = null
      await sdk.shutdown()
    },
  }
  active = tracing
  logger.info(
    {
      endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '(SDK default)',
      protocol: env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
      sampler: env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on',
      samplerArg: env.OTEL_TRACES_SAMPLER_ARG,
      service: env.OTEL_SERVICE_NAME,
    },
    'tracing on: OpenTelemetry SDK started',
  )
  return tracing
}
