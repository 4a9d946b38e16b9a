/**
 * Resolves a request's API key to its tenant from an in-memory table: no I/O on the request path.
 * Keys are kept only as SHA-256 digests; the presented key is digested and compared in constant
 * time, so neither the config nor a timing side channel reveals a key.
 */
import { hash, timingSafeEqual } from 'node:crypto'
import { GatewayError } from '../errors.ts'
import type { AuthConfig } from './config.ts'

export interface Principal {
  readonly keyName: string
  readonly tenant: string
  /** null: every model. */
  readonly models: ReadonlySet<string> | null
}

export const ANONYMOUS: Principal = Object.freeze({ keyName: 'anonymous', tenant: 'default', models: null })

interface Entry {
  readonly digest: Buffer
  readonly principal: Principal
}

export class Authenticator {
  /** False when no keys are configured: every request is the anonymous `default` tenant. */
  readonly enabled: boolean
  private readonly byDigest: Map<string, Entry>

  constructor(config: AuthConfig) {
    this.byDigest = new Map()
    for (const k of config.keys) {
      const hex = k.hash.slice('sha256:'.length)
      const models = k.models.includes('*') ? null : new Set(k.models)
      this.byDigest.set(hex, { digest: Buffer.from(hex, 'hex'), principal: Object.freeze({ keyName: k.name, tenant: k.tenant, models }) })
    }
    this.enabled = this.byDigest.size > 0
  }

  /** The principal for an `Authorization` header value; throws GW_ERR_UNAUTHORIZED. */
  authenticate(authorization: string | undefined): Principal {
    if (!this.enabled) return ANONYMOUS
    const token = authorization === undefined ? '' : bearerToken(authorization)
    if (token === '') throw new GatewayError('GW_ERR_UNAUTHORIZED')
    const digest = hash('sha256', token, 'buffer')
    const entry = this.byDigest.get(digest.toString('hex'))
    if (entry === undefined || !timingSafeEqual(entry.digest, digest)) throw new GatewayError('GW_ERR_UNAUTHORIZED')
    return entry.principal
  }

  /** Throws GW_ERR_MODEL_NOT_ALLOWED when the principal may not use the public model. */
  authorize(principal: Principal, model: string): void {
    if (principal.models !== null && !principal.models.has(model)) {
      throw new GatewayError('GW_ERR_MODEL_NOT_ALLOWED', model, { param: 'model' })
    }
  }
}

/**
 * The credential of a `Bearer` Authorization value, or '' when it is not one. The scheme is
 * case-insensitive (RFC 9110 11.1) and may be followed by more than one space.
 */
export function bearerToken(authorization: string): string {
  if (authorization.length <= 7 || authorization.charCodeAt(6) !== 32) return ''
  const scheme = authorization.slice(0, 6)
  if (scheme !== 'Bearer' && scheme.toLowerCase() !== 'bearer') return ''
  return authorization.slice(7).trim()
}

export function hashKey(key: string): string {
  return `sha256:${hash('sha256', key, 'hex')}`
}
