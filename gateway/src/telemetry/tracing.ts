/**
 * OpenTelemetry tracing. The request path touches only `@opentelemetry/api`, and only when
 * tracing is on: `activeTracing()` is null otherwise, and a null check is all a request pays.
 * When the standard variables or the config ask for tracing, the trace SDK
 * (`@opentelemetry/sdk-trace`) and the one OTLP exporter the protocol needs are imported lazily,
 * once, at startup (see sdk.ts), and configured from the standard `OTEL_*` variables.
 */
import type { Tracer } from '@opentelemetry/api'
import type { Logger } from './logger.ts'
import type { TelemetryConfig } from './config.ts'
import type { TraceSampling } from './sampling.ts'
import { DEFAULT_CONTENT_MAX_LENGTH } from './output-capture.ts'

export const TRACER_NAME = 'velox-gateway'
const DEFAULT_SERVICE_NAME = 'velox-gateway'
/**
 * How long stopping waits for the last spans to reach the collector. The exporter alone would
 * retry an unreachable one for its whole timeout (10 s by default), holding up the process's exit.
 */
export const SHUTDOWN_FLUSH_MS = 2_000

export interface Tracing {
  readonly tracer: Tracer
  /** Decides whether a request is recorded before any span work. */
  readonly sampling: TraceSampling
  /** Prompt and completion text may be recorded (opt-in; off by default). */
  readonly captureContent: boolean
  /** With captureContent: the completion text kept per span, in characters. */
  readonly contentMaxLength: number
  /** Flushes what is queued (for at most `SHUTDOWN_FLUSH_MS`; the rest is dropped) and stops the SDK. */
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
  // The SDK's exporters read the variables themselves (endpoint, headers, timeout, certificates).
  Object.assign(env, sdkEnvironment(config, env))
  const { startSdk } = await import('./sdk.ts')
  const sdk = await startSdk(TRACER_NAME, logger)
  const tracing: Tracing = {
    tracer: sdk.tracer,
    sampling: sdk.sampling,
    captureContent: config.captureContent,
    contentMaxLength: config.contentMaxLength ?? DEFAULT_CONTENT_MAX_LENGTH,
    shutdown: async () => {
      active = null
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS, 'late')))
      const done = sdk.shutdown().then(() => 'done' as const)
      const outcome = await Promise.race([done, deadline]).finally(() => clearTimeout(timer))
      if (outcome === 'late') {
        done.catch(() => {})
        throw new Error(`spans not exported within ${SHUTDOWN_FLUSH_MS} ms of the stop were dropped`)
      }
    },
  }
  active = tracing
  logger.info(
    {
      endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '(SDK default)',
      protocol: sdk.protocol,
      exporters: sdk.exporters,
      sampler: sdk.sampler,
      propagators: sdk.propagators,
      service: env.OTEL_SERVICE_NAME,
    },
    'tracing on: OpenTelemetry SDK started',
  )
  return tracing
}
