/**
 * Resolves a request's API key to its tenant from an in-memory table: no I/O on the request path.
 * Keys are kept only as SHA-256 digests; the presented key is digested and compared in constant
 * time, so neither the config nor a timing side channel reveals a key.
 *
 * The key comes from `Authorization: Bearer <key>` (the scheme is case-insensitive, RFC 9110) or
 * from `x-api-key` (what Anthropic's SDKs send).
 */
import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '../errors.ts'
import type { ApiKeyConfig, AuthConfig, Priority } from './config.ts'

export interface Principal {
  readonly keyName: string
  readonly tenant: string
  /** null: every model. */
  readonly models: ReadonlySet<string> | null
  readonly priority: Priority
  /** ms since the epoch; Infinity when the key does not expire. */
  readonly expiresAt: number
}

export const ANONYMOUS: Principal = Object.freeze({ keyName: 'anonymous', tenant: 'default', models: null, priority: 'normal', expiresAt: Number.POSITIVE_INFINITY })

interface Entry {
  readonly digest: Buffer
  readonly principal: Principal
}

const BEARER = /^bearer[ \t]+/i

export class Authenticator {
  /** False when no keys are configured: every request is the anonymous `default` tenant. */
  readonly enabled: boolean
  readonly #configKeys: readonly ApiKeyConfig[]
  #byDigest: Map<string, Entry>

  constructor(config: AuthConfig, fileKeys: readonly ApiKeyConfig[] = []) {
    this.#configKeys = config.keys
    this.enabled = config.keys.length > 0 || config.keysFile !== undefined
    this.#byDigest = index(config.keys, fileKeys)
  }

  /** Swaps in the keys of a re-read keys file (the config's own keys stay). */
  setFileKeys(fileKeys: readonly ApiKeyConfig[]): void {
    this.#byDigest = index(this.#configKeys, fileKeys)
  }

  /** Every key's principal (for operators: names, tenants, expiry; never digests). */
  principals(): Principal[] {
    return [...this.#byDigest.values()].map((e) => e.principal)
  }

  /** The principal for a request's headers; throws GW_ERR_UNAUTHORIZED. */
  authenticate(headers: IncomingHttpHeaders, now = Date.now()): Principal {
    if (!this.enabled) return ANONYMOUS
    const key = presentedKey(headers)
    if (key === null) throw new GatewayError('GW_ERR_UNAUTHORIZED')
    const digest = hash('sha256', key, 'buffer')
    const entry = this.#byDigest.get(digest.toString('hex'))
    if (entry === undefined || !timingSafeEqual(entry.digest, digest)) throw new GatewayError('GW_ERR_UNAUTHORIZED')
    if (now >= entry.principal.expiresAt) throw new GatewayError('GW_ERR_KEY_EXPIRED')
    return entry.principal
  }

  /** Throws GW_ERR_MODEL_NOT_ALLOWED when the principal may not use the public model. */
  authorize(principal: Principal, model: string): void {
    if (!allows(principal, model)) throw new GatewayError('GW_ERR_MODEL_NOT_ALLOWED', model, { param: 'model' })
  }
}

export function allows(principal: Principal, model: string): boolean {
  return principal.models === null || principal.models.has(model)
}

function presentedKey(headers: IncomingHttpHeaders): string | null {
  const authorization = headers.authorization
  if (authorization !== undefined) {
    const m = BEARER.exec(authorization)
    const key = m === null ? '' : authorization.slice(m[0].length).trim()
    return key === '' ? null : key
  }
  const apiKey = headers['x-api-key']
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return apiKey.trim()
  return null
}

function index(...lists: (readonly ApiKeyConfig[])[]): Map<string, Entry> {
  const byDigest = new Map<string, Entry>()
  for (const list of lists) {
    for (const k of list) {
      const hex = k.hash.slice('sha256:'.length)
      if (byDigest.has(hex)) continue // the config's own entry wins over a file's
      const models = k.models.includes('*') ? null : new Set(k.models)
      const expiresAt = k.expiresAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(k.expiresAt)
      byDigest.set(hex, { digest: Buffer.from(hex, 'hex'), principal: Object.freeze({ keyName: k.name, tenant: k.tenant, models, priority: k.priority, expiresAt }) })
    }
  }
  return byDigest
}

export function hashKey(key: string): string {
  return `sha256:${hash('sha256', key, 'hex')}`
}
