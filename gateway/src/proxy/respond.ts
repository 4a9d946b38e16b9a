/** Writing gateway-made responses straight to the raw socket response (used after hijack). */
import type { ClientResponse } from '../protocols/client-response.ts'
import type { GatewayError } from '../errors.ts'
import type { EndpointName } from './endpoints.ts'
import { sseData, sseEvent } from '../protocols/sse.ts'

export function writeError(res: ClientResponse, err: GatewayError, extraHeaders?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const body = err.body()
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  }
  if (err.retryAfter !== null) headers['retry-after'] = String(err.retryAfter)
  res.writeHead(err.status, headers)
  res.end(body)
}

/**
 * The SSE event that ends a stream which failed after it started: clients see an error, not
 * success. A Responses API stream gets the Responses `error` event (what OpenAI sends and the
 * SDKs' Responses parsers accept); the other endpoints the chat-style `data: {"error":...}`.
 */
export function sseErrorEvent(err: GatewayError, endpoint: EndpointName | null = null): string {
  if (endpoint === 'responses') {
    return sseEvent('error', JSON.stringify({ type: 'error', sequence_number: 0, code: err.code, message: err.message, param: err.param }))
  }
  return sseData(err.body())
}
