/**
 * The client headers passed upstream: an allow-list from config, compiled once per snapshot.
 * Everything else, credentials above all, stays behind. `user-agent` goes as
 * `x-forwarded-user-agent`, since the upstream connection has its own.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { REQUEST_ID_HEADER } from '../telemetry/request-id.ts'
import { NEVER_FORWARDED } from './config.ts'


const RENAMED: Record<string, string> = { 'user-agent': 'x-forwarded-user-agent' }

/** `[clientName, upstreamName]` pairs. */
export type ForwardedHeaders = readonly (readonly [string, string])[]

export function compileForwardedHeaders(names: readonly string[]): ForwardedHeaders {
  return Object.freeze(names.map((n) => n.toLowerCase()).filter((n) => !NEVER_FORWARDED.has(n)).map((n) => Object.freeze([n, RENAMED[n] ?? n] as const)))
}

/**
 * Propagation headers the gateway writes itself when it traces a call (its own span is the
 * upstream's parent), as the configured propagators (OTEL_PROPAGATORS) say.
 */
const TRACE_CONTEXT: ReadonlySet<string> = new Set(['traceparent', 'tracestate', 'baggage'])

/**
 * The headers sent upstream for one request as undici's flat `[name, value, ...]` list: the
 * request id always (the client's, or the one generated for it), then the allow-listed client
 * headers. When `traced`, the client's trace context is left for the tracer to write (a span's, or
 * the unsampled request's own).
 */
export function pickForwarded(headers: IncomingHttpHeaders, forwarded: ForwardedHeaders, requestId: string, traced: boolean): string[] {
  const out: string[] = [REQUEST_ID_HEADER, requestId]
  for (let i = 0; i < forwarded.length; i++) {
    const pair = forwarded[i]!
    const name = pair[0]
    if (name === REQUEST_ID_HEADER || (traced && TRACE_CONTEXT.has(name))) continue
    const value = headers[name]
    if (typeof value === 'string') out.push(pair[1], value)
  }
  return out
}
