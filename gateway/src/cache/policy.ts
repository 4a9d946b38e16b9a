/**
 * Per-request cache policy: which rules apply to an endpoint/model (compiled once from the config,
 * memoised per pair) and whether a request may be answered from the cache at all.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { CacheConfig, CacheEndpoint, CacheScope, RouteOverride } from './config.ts'

export interface RoutePolicy {
  readonly enabled: boolean
  readonly ttlMs: number
  readonly maxEntryBytes: number
  readonly scope: CacheScope
  readonly cacheNonZeroTemperature: boolean
  readonly semanticEnabled: boolean
  readonly semanticThreshold: number
}

interface CompiledOverride {
  readonly endpoint: CacheEndpoint | null
  readonly modelExact: string | null
  readonly modelPrefix: string | null
  readonly override: RouteOverride
}

/** More distinct endpoint/model pairs than this and the memo is reset (models come from config, so rarely). */
const MEMO_LIMIT = 4096

export class PolicyTable {
  readonly #config: CacheConfig
  readonly #overrides: readonly CompiledOverride[]
  readonly #memo = new Map<string, RoutePolicy>()
  #last: { readonly endpoint: CacheEndpoint; readonly model: string; readonly policy: RoutePolicy } | null = null

  constructor(config: CacheConfig) {
    this.#config = config
    this.#overrides = config.routes.map((o) => {
      const m = o.match.model ?? null
      const prefix = m !== null && m.endsWith('*') ? m.slice(0, -1) : null
      return { endpoint: o.match.endpoint ?? null, modelExact: prefix === null ? m : null, modelPrefix: prefix, override: o }
    })
  }

  resolve(endpoint: CacheEndpoint, model: string): RoutePolicy {
    // Traffic is mostly one endpoint and model after another: the last answer is kept.
    const last = this.#last
    if (last !== null && last.endpoint === endpoint && last.model === model) return last.policy
    const memoKey = endpoint + '\u0000' + model
    let p = this.#memo.get(memoKey)
    if (p !== undefined) {
      this.#last = { endpoint, model, policy: p }
      return p
    }
    const c = this.#config
    const o = this.#overrides.find(
      (x) =>
        (x.endpoint === null || x.endpoint === endpoint) &&
        (x.modelExact === null || x.modelExact === model) &&
        (x.modelPrefix === null || model.startsWith(x.modelPrefix)),
    )?.override
    p = Object.freeze({
      enabled: o?.enabled ?? c.enabled,
      ttlMs: (o?.ttlSeconds ?? c.ttlSeconds) * 1000,
      maxEntryBytes: o?.maxEntryBytes ?? c.maxEntryBytes,
      scope: o?.scope ?? c.scope,
      cacheNonZeroTemperature: o?.cacheNonZeroTemperature ?? c.cacheNonZeroTemperature,
      semanticEnabled: (o?.semantic?.enabled ?? c.semantic.enabled) && endpoint === 'chat.completions',
      semanticThreshold: o?.semantic?.threshold ?? c.semantic.threshold,
    })
    if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear()
    this.#memo.set(memoKey, p)
    this.#last = { endpoint, model, policy: p }
    return p
  }
}

export type BypassReason =
  | 'disabled'
  | 'no-store'
  | 'no-cache'
  | 'opt-out'
  | 'temperature'
  | 'n'
  | 'no-end-user'
  | 'background'

/** Request header a client sets (any value but `0`/`false`) to keep this request out of the cache. */
export const CACHE_BYPASS_REQUEST_HEADER = 'x-velox-cache-bypass'

/** `no-store` wins over `no-cache`; null when neither is present. */
export function cacheControlDirective(headers: IncomingHttpHeaders): 'no-store' | 'no-cache' | null {
  const cc = headers['cache-control']
  if (cc === undefined) return null
  const v = (Array.isArray(cc) ? cc.join(',') : cc).toLowerCase()
  if (v.includes('no-store')) return 'no-store'
  if (v.includes('no-cache')) return 'no-cache'
  return null
}

function optedOut(headers: IncomingHttpHeaders): boolean {
  const v = headers[CACHE_BYPASS_REQUEST_HEADER]
  if (v === undefined) return false
  const s = (Array.isArray(v) ? v[0] ?? '' : v).trim().toLowerCase()
  return s !== '0' && s !== 'false'
}

/**
 * Why a request whose headers allow caching must still not be served from the cache, or null.
 * Sampling makes a response one draw among many: replaying it is only right when the caller
 * asked for a deterministic answer (temperature 0) or the operator said draws may be shared.
 */
export function bodyBypassReason(endpoint: CacheEndpoint, body: Record<string, unknown>, policy: RoutePolicy): BypassReason | null {
  if (endpoint === 'embeddings') return null
  const n = body.n
  if (typeof n === 'number' && n > 1) return 'n'
  const bestOf = body.best_of
  if (typeof bestOf === 'number' && bestOf > 1) return 'n'
  if (endpoint === 'responses' && body.background === true) return 'background'
  if (!policy.cacheNonZeroTemperature) {
    const t = body.temperature
    // Absent means the provider default, which is 1 for OpenAI and vLLM.
    if (typeof t !== 'number' || t > 0) return 'temperature'
  }
  return null
}

export function headerBypassReason(headers: IncomingHttpHeaders): BypassReason | null {
  if (optedOut(headers)) return 'opt-out'
  return cacheControlDirective(headers)
}

export function scopeId(scope: CacheScope, tenant: string, endUser: string | null): string | null {
  switch (scope) {
    case 'tenant':
      return 't:' + tenant
    case 'user':
      // Without an end-user id per-user isolation cannot be honoured, so nothing is shared.
      return endUser === null || endUser === '' ? null : 't:' + tenant + '\u0000u:' + endUser
    case 'global':
      return 'global'
  }
}
