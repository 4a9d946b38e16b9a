/**
 * Reads the few fields routing needs from a request body. The bytes themselves are forwarded
 * unchanged; this parse exists to route, count and cache, never to rebuild the request.
 */
import { GatewayError } from '../errors.ts'

export interface ParsedBody {
  readonly json: Record<string, unknown>
  readonly model: string
  readonly stream: boolean
}

export function parseBody(raw: Buffer): ParsedBody {
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
  const stream = body.stream
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw new GatewayError('GW_ERR_INVALID_BODY', '"stream" must be a boolean', { param: 'stream' })
  }
  return { json: body, model, stream: stream === true }
}

/** Returns the body bytes with `model` replaced (an alias resolved to the upstream's model id). */
export function rewriteModel(body: Record<string, unknown>, model: string): Buffer {
  return Buffer.from(JSON.stringify({ ...body, model }))
}
