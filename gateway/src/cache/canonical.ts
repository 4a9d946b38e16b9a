/**
 * Canonical form of a request body: the same request written with keys in another order, or with
 * fields that cannot change the output, gives the same string. Everything else is kept verbatim,
 * unknown fields included, because a field we do not understand may change the answer.
 */
import { hash } from 'node:crypto'

/**
 * Top-level body fields that never change the generated content. `stream` and `stream_options`
 * only change the wire shape, which replay synthesizes; the others are bookkeeping.
 */
const IGNORED_TOP_LEVEL = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'safety_identifier', 'prompt_cache_key', 'service_tier'])

/** Keys as they are written (`"role":`), memoised: bodies repeat the same few keys. */
const QUOTED_KEYS = new Map<string, string>()
const QUOTED_KEYS_MAX = 1024
const QUOTED_KEY_MAX_LENGTH = 64

function quotedKey(k: string): string {
  let q = QUOTED_KEYS.get(k)
  if (q === undefined) {
    q = JSON.stringify(k) + ':'
    // Clients choose keys: only short ones are kept, and only so many.
    if (k.length <= QUOTED_KEY_MAX_LENGTH && QUOTED_KEYS.size < QUOTED_KEYS_MAX) QUOTED_KEYS.set(k, q)
  }
  return q
}

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
  const n = keys.length
  if (n === 2) {
    // The common case (a message's role and content) without a sort.
    if (keys[0]! > keys[1]!) {
      const first = keys[0]!
      keys[0] = keys[1]!
      keys[1] = first
    }
  } else if (n > 2 && !isSorted(keys)) {
    keys.sort()
  }
  let out = '{'
  let first = true
  for (let i = 0; i < n; i++) {
    const k = keys[i]!
    const val = obj[k]
    if (val === undefined) continue
    out += (first ? '' : ',') + quotedKey(k) + canonicalValue(val)
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
    out += ',' + quotedKey(k) + canonicalValue(val)
  }
  return out + '}'
}

/** Canonical string of any JSON value (sorted keys). */
export function canonicalJson(v: unknown): string {
  return canonicalValue(v)
}

/**
 * 256-bit digest, base64url: collisions are not a practical concern, so the key is the identity.
 * The parts are joined with NUL and hashed in one call (the same digest as feeding them one by one
 * with NUL between): one-shot `hash` skips building a Hash object, half the cost on a chat body.
 */
export function digest(...parts: string[]): string {
  return hash('sha256', parts.length === 1 ? parts[0]! : parts.join('\u0000'), 'base64url')
}
