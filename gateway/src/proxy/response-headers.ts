/**
 * The headers the client gets with a proxied response: the upstream's, minus hop-by-hop ones
 * (and those its `Connection` header names), with the gateway's own stream settings and timing.
 */
import type { UpstreamHeaders } from './context.ts'

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
])
/** Set by the gateway itself on every stream, whatever the upstream said. */
const SSE_OVERRIDDEN = new Set(['x-accel-buffering', 'cache-control', 'content-length'])

/** Header names an upstream's `Connection` header marks as hop-by-hop (RFC 9110 7.6.1), or null. */
function connectionListed(value: string | string[] | undefined): string[] | null {
  if (value === undefined) return null
  const v = typeof value === 'string' ? value : value.join(',')
  if (v === 'keep-alive' || v === 'close') return null
  return v.toLowerCase().split(',').map((t) => t.trim())
}

/** The upstream's end-to-end headers as a flat name/value list, plus which upstream answered. */
export function responseHeaders(headers: UpstreamHeaders, sse: boolean, upstreamName: string): string[] {
  const out: string[] = []
  const listed = connectionListed(headers.connection)
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || (sse && SSE_OVERRIDDEN.has(name)) || (listed !== null && listed.includes(name))) continue
    const value = headers[name]
    if (value === undefined) continue
    if (typeof value === 'string') out.push(name, value)
    else for (const v of value) out.push(name, v)
  }
  out.push('x-velox-upstream', upstreamName)
  if (sse) out.push('x-accel-buffering', 'no', 'cache-control', 'no-cache')
  return out
}

/** `Server-Timing`: the gateway's own share of the time to first byte, and the upstream's. */
export function serverTiming(gatewayMs: number, upstreamMs: number): string {
  return `gw;dur=${gatewayMs.toFixed(3)}, upstream;dur=${upstreamMs.toFixed(3)}`
}
