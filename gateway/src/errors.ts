/**
 * Every error the gateway produces, created once with a stable code. Codes are part of the API:
 * clients match on them, so a code is never renamed or reused once retired. Each code is
 * documented in docs/errors.md (a test keeps the two in step).
 *
 * Bodies follow OpenAI's shape: `{"error":{"message","type","param","code"}}`.
 */

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'timeout_error'
  | 'insufficient_quota'

export interface ErrorDefinition {
  readonly code: string
  readonly status: number
  readonly type: ErrorType
  /** Default message; a `%s` is replaced by the detail given when the error is raised. */
  readonly message: string
  /**
   * OpenAI's own code for this condition, sent as `code` so clients written against OpenAI
   * recognise it (`rate_limit_exceeded`, `insufficient_quota`); the GW_ERR_* code then travels
   * as `gateway_code`.
   */
  readonly openaiCode?: string
}

function def(code: string, status: number, type: ErrorType, message: string, openaiCode?: string): ErrorDefinition {
  return Object.freeze(openaiCode === undefined ? { code, status, type, message } : { code, status, type, message, openaiCode })
}

export const ERRORS = Object.freeze({
  GW_ERR_INVALID_JSON: def('GW_ERR_INVALID_JSON', 400, 'invalid_request_error', 'Request body is not valid JSON: %s'),
  GW_ERR_INVALID_BODY: def('GW_ERR_INVALID_BODY', 400, 'invalid_request_error', 'Request body is invalid: %s'),
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: def('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 415, 'invalid_request_error', 'Content-Type must be application/json, got %s'),
  GW_ERR_UNSUPPORTED_ENCODING: def('GW_ERR_UNSUPPORTED_ENCODING', 415, 'invalid_request_error', 'Unsupported Content-Encoding: %s'),
  GW_ERR_UNSUPPORTED_CONTENT: def('GW_ERR_UNSUPPORTED_CONTENT', 400, 'invalid_request_error', 'The request uses something the upstream protocol has no equivalent for: %s'),
  GW_ERR_MODEL_REQUIRED: def('GW_ERR_MODEL_REQUIRED', 400, 'invalid_request_error', 'The "model" field is required and must be a non-empty string'),
  GW_ERR_MODEL_NOT_FOUND: def('GW_ERR_MODEL_NOT_FOUND', 404, 'not_found_error', 'The model "%s" does not exist or is not served by this gateway'),
  GW_ERR_BODY_TOO_LARGE: def('GW_ERR_BODY_TOO_LARGE', 413, 'invalid_request_error', 'Request body exceeds the limit of %s bytes'),
  GW_ERR_NOT_FOUND: def('GW_ERR_NOT_FOUND', 404, 'not_found_error', 'Unknown endpoint: %s'),
  GW_ERR_METHOD_NOT_ALLOWED: def('GW_ERR_METHOD_NOT_ALLOWED', 405, 'invalid_request_error', 'Method not allowed: %s'),
  GW_ERR_UNAUTHORIZED: def('GW_ERR_UNAUTHORIZED', 401, 'authentication_error', 'Missing or invalid API key'),
  GW_ERR_KEY_EXPIRED: def('GW_ERR_KEY_EXPIRED', 401, 'authentication_error', 'This API key has expired'),
  GW_ERR_MODEL_NOT_ALLOWED: def('GW_ERR_MODEL_NOT_ALLOWED', 403, 'permission_error', 'This API key may not use the model "%s"'),
  GW_ERR_UPSTREAMS_SATURATED: def('GW_ERR_UPSTREAMS_SATURATED', 503, 'server_error', 'Every upstream serving the model "%s" has a full queue; retry later'),
  GW_ERR_NO_HEALTHY_UPSTREAM: def('GW_ERR_NO_HEALTHY_UPSTREAM', 503, 'server_error', 'No healthy upstream can serve the model "%s"; retry later'),
  GW_ERR_UPSTREAM_OVERLOADED: def('GW_ERR_UPSTREAM_OVERLOADED', 503, 'server_error', 'Every upstream that serves the model "%s" is at its connection limit with a full queue, or the wait for a connection passed its deadline; retry later'),
  GW_ERR_UPSTREAM_UNAVAILABLE: def('GW_ERR_UPSTREAM_UNAVAILABLE', 502, 'server_error', 'The upstream could not be reached: %s'),
  GW_ERR_UPSTREAM_TIMEOUT: def('GW_ERR_UPSTREAM_TIMEOUT', 504, 'timeout_error', 'The upstream did not respond in time: %s'),
  GW_ERR_UPSTREAM_CONNECT_TIMEOUT: def('GW_ERR_UPSTREAM_CONNECT_TIMEOUT', 504, 'timeout_error', 'Connecting to the upstream timed out: %s'),
  GW_ERR_UPSTREAM_IDLE_TIMEOUT: def('GW_ERR_UPSTREAM_IDLE_TIMEOUT', 504, 'timeout_error', 'The upstream stopped sending for longer than %s ms'),
  GW_ERR_UPSTREAM_TOTAL_TIMEOUT: def('GW_ERR_UPSTREAM_TOTAL_TIMEOUT', 504, 'timeout_error', 'The request exceeded its total deadline of %s ms'),
  GW_ERR_UPSTREAM_STREAM_BROKEN: def('GW_ERR_UPSTREAM_STREAM_BROKEN', 502, 'server_error', 'The upstream connection failed mid-response: %s'),
  GW_ERR_UPSTREAM_BAD_RESPONSE: def('GW_ERR_UPSTREAM_BAD_RESPONSE', 502, 'server_error', 'The upstream answered with something the gateway will not pass on: %s'),
  GW_ERR_UPSTREAM_CREDENTIALS: def('GW_ERR_UPSTREAM_CREDENTIALS', 503, 'server_error', 'The gateway has no credentials to sign requests to this upstream: %s'),
  GW_ERR_MALFORMED_REQUEST: def('GW_ERR_MALFORMED_REQUEST', 400, 'invalid_request_error', 'The HTTP request could not be parsed: %s'),
  GW_ERR_EXPECTATION_FAILED: def('GW_ERR_EXPECTATION_FAILED', 417, 'invalid_request_error', 'The Expect header "%s" cannot be met; only 100-continue is supported'),
  GW_ERR_HEADERS_TOO_LARGE: def('GW_ERR_HEADERS_TOO_LARGE', 431, 'invalid_request_error', 'Request headers are too large'),
  GW_ERR_BODY_TOO_SLOW: def('GW_ERR_BODY_TOO_SLOW', 408, 'invalid_request_error', 'The request body arrived slower than %s bytes per second'),
  GW_ERR_REQUEST_TIMEOUT: def('GW_ERR_REQUEST_TIMEOUT', 408, 'invalid_request_error', 'The request was not received in time'),
  GW_ERR_SHUTTING_DOWN: def('GW_ERR_SHUTTING_DOWN', 503, 'server_error', 'The gateway is shutting down and stopped this response at its drain deadline; retry'),
  GW_ERR_ADMIN_UNAUTHORIZED: def('GW_ERR_ADMIN_UNAUTHORIZED', 401, 'authentication_error', 'Missing or invalid admin token'),
  GW_ERR_MEMBER_NOT_FOUND: def('GW_ERR_MEMBER_NOT_FOUND', 404, 'not_found_error', 'No routing member is named "%s"'),
  GW_ERR_CACHE_DISABLED: def('GW_ERR_CACHE_DISABLED', 409, 'invalid_request_error', 'The response cache is off (cache.enabled: false)'),
  GW_ERR_CACHE_PURGE_FAILED: def('GW_ERR_CACHE_PURGE_FAILED', 503, 'server_error', 'The shared cache tier could not be purged: %s'),
  GW_ERR_RELOAD_REJECTED: def('GW_ERR_RELOAD_REJECTED', 422, 'invalid_request_error', 'The config reload was refused; the running config stays in force: %s'),
  GW_ERR_INVALID_QUERY: def('GW_ERR_INVALID_QUERY', 400, 'invalid_request_error', 'A query parameter is invalid: %s'),
  GW_ERR_USAGE_UNAVAILABLE: def('GW_ERR_USAGE_UNAVAILABLE', 503, 'server_error', 'The shared usage totals could not be read from Redis: %s'),
  GW_ERR_PROFILE_BUSY: def('GW_ERR_PROFILE_BUSY', 409, 'invalid_request_error', 'A CPU profile is already being taken; try again when it ends'),
  GW_ERR_RATE_LIMITED: def('GW_ERR_RATE_LIMITED', 429, 'rate_limit_error', 'Rate limit reached: %s', 'rate_limit_exceeded'),
  GW_ERR_BUDGET_EXCEEDED: def('GW_ERR_BUDGET_EXCEEDED', 429, 'insufficient_quota', 'Budget exceeded: %s', 'insufficient_quota'),
  GW_ERR_INTERNAL: def('GW_ERR_INTERNAL', 500, 'server_error', 'Internal gateway error'),
})

export type ErrorCode = keyof typeof ERRORS

/** An error with a registry code; thrown or returned anywhere, rendered once by the server. */
export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly type: ErrorType
  readonly param: string | null
  /** Seconds for a `Retry-After` header, or null. */
  readonly retryAfter: number | null

  constructor(code: ErrorCode, detail?: string, opts?: { param?: string; retryAfter?: number; cause?: unknown }) {
    const d = ERRORS[code]
    super(d.message.includes('%s') ? d.message.replace('%s', detail ?? '') : d.message, opts?.cause ? { cause: opts.cause } : undefined)
    this.name = 'GatewayError'
    this.code = code
    this.status = d.status
    this.type = d.type
    this.param = opts?.param ?? null
    this.retryAfter = opts?.retryAfter ?? null
  }

  /** The OpenAI-shaped JSON body. */
  toJSON(): { error: { message: string; type: ErrorType; param: string | null; code: string; gateway_code?: string } } {
    const openaiCode = ERRORS[this.code].openaiCode
    if (openaiCode !== undefined) return { error: { message: this.message, type: this.type, param: this.param, code: openaiCode, gateway_code: this.code } }
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }

  body(): string {
    return JSON.stringify(this.toJSON())
  }
}
