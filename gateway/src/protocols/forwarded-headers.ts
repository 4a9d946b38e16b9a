/**
 * The client headers passed upstream: an allow-list from config, compiled once per snapshot.
 * Everything else, credentials above all, stays behind. `user-agent` goes as
 * `x-forwarded-user-agent`, since the upstream connection has its own.
 */
import type { IncomingHttpHeaders } from 'node:http'

/** Headers never forwarded whatever the config says: credentials and hop or framing headers. */
export const NEVER_FORWARDED: ReadonlySet<string> = new Set([
  'authorization', 'x-api-key', 'cookie', 'proxy-authorization', 'host', 'content-length', 'content-type', 'content-encoding',
  'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'x-velox-hop',
])

const RENAMED: Record<string, string> = { 'user-agent': 'x-forwarded-user-agent' }

/** `[clientName, upstreamName]` pairs. */
export type ForwardedHeaders = readonly (readonly [string, string])[]

export function compileForwardedHeaders(names: readonly string[]): ForwardedHeaders {
  return Object.freeze(names.map((n) => n.toLowerCase()).filter((n) => !NEVER_FORWARDED.has(n)).map((n) => Object.freeze([n, RENAMED[n] ?? n] as const)))
}

/** The forwarded headers of one request as undici's flat `[name, value, ...]` list, or null for none. */
export function pickForwarded(headers: IncomingHttpHeaders, forwarded: ForwardedHeaders): string[] | null {
  let out: string[] | null = null
  for (let i = 0; i < forwarded.length; i++) {
    const pair = forwarded[i]!
    const value = headers[pair[0]]
    if (typeof value === 'string') (out ??= []).push(pair[1], value)
  }
  return out
}
