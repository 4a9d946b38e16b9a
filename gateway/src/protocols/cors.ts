/**
 * CORS for browser clients: origins from config, compiled once. A matching request gets
 * `Access-Control-Allow-Origin` (and the gateway's own headers exposed to scripts); a preflight
 * (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 by the gateway itself, never
 * forwarded. Headers are set on the raw response so hijacked (proxied, streamed) answers carry
 * them too. Nothing is added for origins that are not allowed: the browser then refuses.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'

export interface CorsConfig {
  /** Allowed origins (`https://app.example.com`), or `"*"` for any. Empty: CORS off. */
  readonly origins: readonly string[]
  /** How long a browser may cache a preflight answer (s). */
  readonly maxAgeSeconds: number
}

/** Response headers a browser script may read. */
const EXPOSED = 'x-request-id, x-velox-upstream, x-velox-cache, x-velox-cache-reason, server-timing, retry-after, request-id'
const METHODS = 'GET, POST, OPTIONS'
/** Request headers the SDKs send, allowed when a preflight does not list its own. */
const DEFAULT_ALLOWED_HEADERS = 'authorization, content-type, x-api-key, anthropic-version, anthropic-beta, openai-beta, x-request-id, x-stainless-os, x-stainless-lang'

export class Cors {
  readonly enabled: boolean
  private readonly any: boolean
  private readonly origins: ReadonlySet<string>
  private readonly maxAge: string

  constructor(config: CorsConfig) {
    this.any = config.origins.includes('*')
    this.origins = new Set(config.origins.filter((o) => o !== '*').map((o) => o.replace(/\/+$/, '').toLowerCase()))
    this.enabled = this.any || this.origins.size > 0
    this.maxAge = String(config.maxAgeSeconds)
  }

  /** The value for Access-Control-Allow-Origin, or null when the origin is not allowed. */
  allowed(origin: string | undefined): string | null {
    if (origin === undefined || origin === '') return null
    if (this.any) return '*'
    return this.origins.has(origin.toLowerCase()) ? origin : null
  }

  /** Adds the CORS headers of an actual request; returns false when nothing was added. */
  decorate(headers: IncomingHttpHeaders, res: ServerResponse): boolean {
    const allow = this.allowed(headers.origin)
    if (allow === null) return false
    res.setHeader('access-control-allow-origin', allow)
    res.setHeader('access-control-expose-headers', EXPOSED)
    if (allow !== '*') res.setHeader('vary', 'Origin')
    return true
  }

  /** True for a preflight request. */
  static isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
    return method === 'OPTIONS' && typeof headers['access-control-request-method'] === 'string'
  }

  /** Answers a preflight: 204 with what may be sent when allowed, 204 without CORS headers when not. */
  preflight(headers: IncomingHttpHeaders, res: ServerResponse): void {
    if (this.decorate(headers, res)) {
      res.setHeader('access-control-allow-methods', METHODS)
      const asked = headers['access-control-request-headers']
      res.setHeader('access-control-allow-headers', typeof asked === 'string' && asked !== '' ? asked : DEFAULT_ALLOWED_HEADERS)
      res.setHeader('access-control-max-age', this.maxAge)
    }
    res.statusCode = 204
    res.end()
  }
}
