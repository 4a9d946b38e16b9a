/** Maps transport failures from undici to gateway error codes and retry classes, once, in one place. */
import type { ErrorCode } from '../errors.ts'
import type { FailureKind } from '../routing/config.ts'

export interface ClassifiedFailure {
  /** Transport failures are 'connect', 'reset' or 'timeout'; statuses are classified by the call. */
  readonly kind: FailureKind
  readonly code: ErrorCode
  readonly detail: string
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT'])
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED'])

export function classifyUpstreamError(err: unknown, timeouts: { connectMs: number; firstByteMs: number; idleMs: number }): ClassifiedFailure {
  const e = err as { code?: string; message?: string; cause?: { code?: string } }
  const code = e.code ?? e.cause?.code ?? ''
  const message = e.message ?? String(err)
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { kind: 'connect', code: 'GW_ERR_UPSTREAM_CONNECT_TIMEOUT', detail: `no connection within ${timeouts.connectMs} ms` }
    case 'UND_ERR_HEADERS_TIMEOUT':
      return { kind: 'timeout', code: 'GW_ERR_UPSTREAM_TIMEOUT', detail: `no response headers within ${timeouts.firstByteMs} ms` }
    case 'UND_ERR_BODY_TIMEOUT':
      return { kind: 'timeout', code: 'GW_ERR_UPSTREAM_IDLE_TIMEOUT', detail: String(timeouts.idleMs) }
  }
  if (CONNECT_CODES.has(code)) return { kind: 'connect', code: 'GW_ERR_UPSTREAM_UNAVAILABLE', detail: `${code}: ${message}` }
  if (RESET_CODES.has(code)) return { kind: 'reset', code: 'GW_ERR_UPSTREAM_UNAVAILABLE', detail: `${code}: ${message}` }
  return { kind: 'reset', code: 'GW_ERR_UPSTREAM_UNAVAILABLE', detail: message }
}
