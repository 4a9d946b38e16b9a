/**
 * Reads the few fields routing needs from a request body. The bytes themselves are forwarded
 * unchanged; this parse exists to route, count and cache, never to rebuild the request.
 */
import { GatewayError } from '../errors.ts'

/**
 * Deepest nesting of objects and arrays a body may have. Real requests (messages, content parts,
 * tool schemas) stay far below it; beyond it every later walk (cache key, alias rewrite,
 * translation) would risk the stack, and parsing itself gets slow, so it is refused before parsing.
 */
export const MAX_JSON_DEPTH = 128
/**
 * Longest `model` accepted. Model ids are short (Hugging Face caps them at 96 characters); the
 * name keys routing, cache and metric state, so a client must not be able to make it large.
 */
export const MAX_MODEL_LENGTH = 256

export interface ParsedBody {
  readonly json: Record<string, unknown>
  readonly model: string
  readonly stream: boolean
}

export function parseBody(raw: Buffer): ParsedBody {
  if (raw.length > MAX_JSON_DEPTH && nestingExceeds(raw, MAX_JSON_DEPTH)) {
    throw new GatewayError('GW_ERR_INVALID_BODY', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`)
  }
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    throw new GatewayError('GW_ERR_INVALID_JSON', (err as Error).message)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new GatewayError('GW_ERR_INVALID_BODY', 'expected a JSON object')
  }
  const body = json as Record<string, unknown>
  const model = body.model
  if (typeof model !== 'string' || model.length === 0) throw new GatewayError('GW_ERR_MODEL_REQUIRED', undefined, { param: 'model' })
  if (model.length > MAX_MODEL_LENGTH) throw new GatewayError('GW_ERR_INVALID_BODY', `"model" is longer than ${MAX_MODEL_LENGTH} characters`, { param: 'model' })
  const stream = body.stream
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw new GatewayError('GW_ERR_INVALID_BODY', '"stream" must be a boolean', { param: 'stream' })
  }
  return { json: body, model, stream: stream === true }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * True when objects and arrays in `raw` nest deeper than `limit`, counting brackets outside
 * strings. One pass over the bytes; string contents are skipped with indexOf. Runs before
 * JSON.parse, so invalid JSON may be refused for its depth rather than its syntax.
 */
export function nestingExceeds(raw: Uint8Array, limit: number): boolean {
  const n = raw.length
  let depth = 0
  for (let i = 0; i < n; i++) {
    const c = raw[i]!
    if (c === QUOTE) {
      // Find the closing quote: one preceded by an even number of backslashes.
      for (;;) {
        const q = raw.indexOf(QUOTE, i + 1)
        if (q === -1) return false
        let slashes = 0
        while (raw[q - 1 - slashes] === BACKSLASH) slashes++
        i = q
        if ((slashes & 1) === 0) break
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return false
}

/** Returns the body bytes with `model` replaced (an alias resolved to the upstream's model id). */
export function rewriteModel(body: Record<string, unknown>, model: string): Buffer {
  return Buffer.from(JSON.stringify({ ...body, model }))
}
