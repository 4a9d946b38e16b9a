/** The shapes a proxied call is built from: what its snapshot shares, and what one request brings. */
import type { Metering } from '../limits/metering.ts'
import type { UsageEventFilter } from '../limits/stream-usage.ts'
import type { Member } from '../routing/member.ts'
import type { RouteRequest } from '../routing/route-request.ts'
import type { Resolution, Router } from '../routing/router.ts'
import type { AccessLog } from '../telemetry/access-log.ts'
import type { GatewayMetrics } from '../telemetry/metrics.ts'
import type { RequestTrace } from '../telemetry/request-trace.ts'
import type { Upstream } from '../upstream/upstream.ts'
import type { NativeRequest } from '../providers/index.ts'
import type { CallCache } from './call-cache.ts'
import type { ProxyCall } from './call.ts'
import type { Endpoint } from './endpoints.ts'
import type { ClassifiedFailure } from './upstream-errors.ts'
import type { InFlight } from './in-flight.ts'

/** A routing member whose dispatcher is an upstream (its undici pool and request headers). */
export type UpstreamMember = Member<Upstream>

/** Response headers as undici hands them over. */
export type UpstreamHeaders = Record<string, string | string[] | undefined>

/** What every call of one runtime snapshot shares; built once per snapshot. */
export interface CallContext {
  readonly metrics: GatewayMetrics
  readonly router: Router<Upstream>
  readonly serverTiming: boolean
  /** server.sseKeepAliveMs: keep-alive comments while a stream waits for its first event; 0 or absent: off. */
  readonly sseKeepAliveMs?: number
  readonly onUpstreamFailure: (call: ProxyCall, member: UpstreamMember, failure: ClassifiedFailure) => void
  readonly inFlight: InFlight<ProxyCall>
  /** Remembers a member's concurrency so its pool is kept open ahead of demand. */
  readonly observeConcurrency: (member: UpstreamMember) => void
  /** Counts the calls running on this context's snapshot, so it closes its pools only when idle. */
  readonly track: (delta: 1 | -1) => void
  /** True once shutdown began: responses ask clients to close their connection. */
  readonly shuttingDown: () => boolean
  /** One line per finished call, or null when the access log is off. */
  readonly accessLog: AccessLog | null
}

/** One request as the proxy layer forwards it. */
export interface CallRequest {
  readonly endpoint: Endpoint
  /** The model the client named (metrics label); the upstream gets `resolution.model`. */
  readonly model: string
  readonly resolution: Resolution<Upstream>
  /** The session key consistent hashing routes on (a header or `user`), or null. */
  readonly affinityKey: string | null
  /** What the inference-aware balancer reads (prompt prefix blocks, explain); absent for the others. */
  readonly route?: RouteRequest | null
  /** The bytes sent upstream: the client's own, unless the model name was rewritten. */
  readonly body: Buffer
  /** Client headers passed upstream, as a flat name/value list, or null for none. */
  readonly forwardedHeaders: readonly string[] | null
  /** performance.now() ms when the request arrived. */
  readonly startedAt: number
  /** Members this request must never use (peers, for a request another gateway forwarded), or null. */
  readonly excluded: Set<UpstreamMember> | null
  /** The cache's part in the call, or null when caching is off. */
  readonly cache: CallCache | null
  /** The request in the protocol the client spoke, for an upstream that speaks it natively; null for OpenAI requests. */
  readonly native: NativeRequest | null
  /** Returned to the client, sent upstream, on every log line and span of the call. */
  readonly requestId: string
  /** The caller, from auth: a tenant and the name of its key (both from the config). */
  readonly tenant: string
  readonly keyName: string
  /** The key's priority class (PRIORITY_CLASS: 0 is critical): its place in upstream queues. */
  readonly priority: number
  /** The client asked for a stream. */
  readonly stream: boolean
  /** The call's spans, or null when tracing is off. */
  readonly trace: RequestTrace | null
  /** Limits and usage for the request, or null when neither auth nor limits are configured. */
  readonly metering: Metering | null
  /** Takes the usage event the gateway asked for out of the client's stream, or null. */
  readonly usageFilter: UsageEventFilter | null
  /** The call committed to one attempt's answer: `body` and `native` are not read after this. */
  release(): void
}
