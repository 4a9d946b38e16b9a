/**
 * Canonical form of a request body: the same request written with keys in another order, or with
 * fields that cannot change the output, gives the same string. Everything else is kept verbatim,
 * unknown fields included, because a field we do not understand may change the answer.
 */
import { createHash } from 'node:crypto'

/**
 * Top-level body fields that never change the generated content. `stream` and `stream_options`
 * only change the wire shape, which replay synthesizes; the others are bookkeeping.
 */
const IGNORED_TOP_LEVEL = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'safety_identifier', 'prompt_cache_key', 'service_tier'])

function canonicalValue(v: unknown): string {
  if (v === null || typeof v !== 'object') {
    // JSON.stringify of a primitive is the canonical spelling (numbers normalised: 1.0 -> 1).
    return v === undefined ? 'null' : JSON.stringify(v)
  }
  if (Array.isArray(v)) {
    let out = '['
    for (let i = 0; i < v.length; i++) out += (i > 0 ? ',' : '') + canonicalValue(v[i])
    return out + ']'
  }
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj)
  if (keys.length > 1 && !isSorted(keys)) keys.sort()
  let out = '{'
  let first = true
  for (const k of keys) {
    const val = obj[k]
    if (val === undefined) continue
    out += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalValue(val)
    first = false
  }
  return out + '}'
}

function isSorted(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false
  return true
}

/**
 * Canonical string of a body with `model` replaced by the resolved upstream model and the
 * ignored fields (plus any in `extraIgnored`) left out.
 */
export function canonicalBody(body: Record<string, unknown>, model: string, extraIgnored?: ReadonlySet<string>): string {
  const keys = Object.keys(body)
  if (!isSorted(keys)) keys.sort()
  let out = '{"model":' + JSON.stringify(model)
  for (const k of keys) {
    if (k === 'model' || IGNORED_TOP_LEVEL.has(k) || extraIgnored?.has(k)) continue
    const val = body[k]
    if (val === undefined) continue
    out += ',' + JSON.stringify(k) + ':' + canonicalValue(val)
  }
  return out + '}'
}

/** Canonical string of any JSON value (sorted keys). */
export function canonicalJson(v: unknown): string {
  return canonicalValue(v)
}

/** 256-bit digest, base64url: collisions are not a practical concern, so the key is the identity. */
export function digest(...parts: string[]): string {
  const h = createHash('sha256')
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) h.update('\u0000')
    h.update(parts[i]!)
  }
  return h.digest('base64url')
}
