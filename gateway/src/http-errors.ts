/**
 * Where errors from outside the registry become registry errors: what fastify raises while
 * reading a request, and requests Node's HTTP parser refuses before any route sees them.
 */
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import { GatewayError } from './errors.ts'

// node:http through require, not an ESM import: building an ESM namespace of node:http reads its
// lazy WebSocket getters, which loads Node's bundled undici (about 12 MB resident) for nothing.
const { STATUS_CODES } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

/** Maps any error a request raised to the registry error its client gets. */
/** `bodyLimit`: the configured limit, named in the 413 message (fastify's error does not carry it). */
export function toGatewayError(error: unknown, bodyLimit: number | null = null): GatewayError {
  if (error instanceof GatewayError) return error
  const e = error as { code?: string; statusCode?: number; message?: string }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('GW_ERR_BODY_TOO_LARGE', String(bodyLimit ?? (e as { bodyLimit?: number }).bodyLimit ?? 'the configured'))
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new GatewayError('GW_ERR_INVALID_JSON', e.message)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', e.message)
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('GW_ERR_INVALID_BODY', 'Content-Length does not match the body')
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new GatewayError('GW_ERR_INVALID_BODY', e.message ?? 'bad request')
  }
  return new GatewayError('GW_ERR_INTERNAL', undefined, { cause: error })
}

/** Requests Node cannot parse never reach a route: answer them in the OpenAI shape too, then close. */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const gwErr =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new GatewayError('GW_ERR_HEADERS_TOO_LARGE')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new GatewayError('GW_ERR_REQUEST_TIMEOUT')
        : new GatewayError('GW_ERR_MALFORMED_REQUEST', err.code ?? err.message)
  const body = gwErr.body()
  socket.end(`HTTP/1.1 ${gwErr.status} ${STATUS_CODES[gwErr.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}
