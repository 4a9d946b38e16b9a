/**
 * Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}` with the status the
 * Anthropic SDKs map to their typed errors (400 BadRequestError, 401 AuthenticationError, 403
 * PermissionDeniedError, 404 NotFoundError, 413, 429 RateLimitError, 5xx InternalServerError).
 * The gateway's own `GW_ERR_*` code rides along as `error.code`, which the SDKs ignore and
 * clients may match on.
 */
import type { GatewayError } from '../../errors.ts'

export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error'

export function anthropicErrorType(status: number): AnthropicErrorType {
  switch (status) {
    case 401: return 'authentication_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 413: return 'request_too_large'
    case 429: return 'rate_limit_error'
    case 503:
    case 529: return 'overloaded_error'
  }
  return status >= 500 ? 'api_error' : 'invalid_request_error'
}

export function anthropicErrorBody(status: number, message: string, code: string | null): string {
  const error: Record<string, unknown> = { type: anthropicErrorType(status), message }
  if (code !== null) error.code = code
  return JSON.stringify({ type: 'error', error })
}

export function gatewayErrorBody(err: GatewayError): string {
  return anthropicErrorBody(err.status, err.message, err.code)
}

/**
 * An error body from an OpenAI-compatible upstream (or the gateway's own OpenAI-shaped one),
 * re-shaped for an Anthropic client; a body that is already Anthropic-shaped, or not JSON,
 * is wrapped or kept as it is.
 */
export function fromOpenAIErrorBody(status: number, body: Buffer | string): string {
  const text = typeof body === 'string' ? body : body.toString('utf8')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return anthropicErrorBody(status, text.trim() === '' ? `upstream answered HTTP ${status}` : text.slice(0, 1_000), null)
  }
  if (typeof parsed === 'object' && parsed !== null) {
    const o = parsed as Record<string, unknown>
    if (o.type === 'error' && typeof o.error === 'object' && o.error !== null) return text
    const e = o.error
    if (typeof e === 'object' && e !== null) {
      const inner = e as Record<string, unknown>
      const message = typeof inner.message === 'string' ? inner.message : JSON.stringify(e)
      return anthropicErrorBody(status, message, typeof inner.code === 'string' ? inner.code : null)
    }
    if (typeof e === 'string') return anthropicErrorBody(status, e, null)
    // vLLM's FastAPI validation errors: {"detail": ...}; others: {"message": ...}.
    const message = typeof o.message === 'string' ? o.message : typeof o.detail === 'string' ? o.detail : text.slice(0, 1_000)
    return anthropicErrorBody(status, message, null)
  }
  return anthropicErrorBody(status, text.slice(0, 1_000), null)
}

/** The `event: error` that ends an Anthropic stream which failed after it started. */
export function errorEvent(body: string): string {
  return 'event: error\ndata: ' + body + '\n\n'
}
