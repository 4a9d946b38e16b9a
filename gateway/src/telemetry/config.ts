import { z } from 'zod'
import { envVarName, nonNegativeInt } from '../config/primitives.ts'

const ratio = z.number().min(0).max(1)

/**
 * Tracing, access log and profiling. Tracing is also switched on by the standard OpenTelemetry
 * variables alone (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); the
 * SDK reads the rest of them (`OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_TRACES_SAMPLER[_ARG]`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`...). Keys set here win over the variables.
 */
export const TracingSchema = z.strictObject({
  /** true: on even without OTEL_* variables (exports to `endpoint` or the SDK's default). false: off whatever the variables say. */
  enabled: z.boolean().optional(),
  /** OTLP/HTTP base URL (`/v1/traces` is appended), like OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint: z.url({ protocol: /^https?$/ }).optional(),
  /** Like OTEL_EXPORTER_OTLP_PROTOCOL. */
  protocol: z.enum(['http/protobuf', 'http/json', 'grpc']).optional(),
  /** Share of new traces recorded (parent-based: a sampled parent is always followed), like OTEL_TRACES_SAMPLER=parentbased_traceidratio. */
  sampleRatio: ratio.optional(),
  /** Like OTEL_SERVICE_NAME. */
  serviceName: z.string().min(1).optional(),
  /** Record prompt and completion text on spans. Off: never, whatever the request holds. */
  captureContent: z.boolean().default(false),
  /** With captureContent: the completion text kept per span (characters); the rest is cut and marked `…[truncated]`. Default 16384. */
  contentMaxLength: z.number().int().min(16).max(1_048_576).optional(),
})

export const AccessLogSchema = z.strictObject({
  /** One structured line per request, written after the response ends. */
  enabled: z.boolean().default(false),
  /** Share of successful requests logged; failed ones (status >= 400) are always logged, within `failuresPerMinute`. */
  sampleRatio: ratio.default(1),
  /** Failure lines (access log and upstream failures) kept per cause and minute; the rest are counted and summarised. */
  failuresPerMinute: nonNegativeInt.default(60),
})

export const ProfilingSchema = z.strictObject({
  /**
   * Continuous profiling: push a CPU profile (pprof) every `intervalMs` to a Pyroscope-compatible
   * `/ingest` endpoint. Absent: off; on-demand profiles stay available on the admin listener.
   */
  pushUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** Application name at the collector (Pyroscope's `name`). */
  appName: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/).default('velox.gateway'),
  intervalMs: z.number().int().min(1_000).default(15_000),
  /** Static labels added to every pushed profile (region, stage...). */
  labels: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().regex(/^[^{},=]*$/)).default({}),
  /** Environment variable holding a bearer token for the collector. */
  tokenEnv: envVarName.optional(),
})

export const TelemetrySchema = z.strictObject({
  tracing: TracingSchema.prefault({}),
  accessLog: AccessLogSchema.prefault({}),
  profiling: ProfilingSchema.prefault({}),
})

export type TelemetryConfig = z.output<typeof TelemetrySchema>
