/**
 * HTTP/1.1 rules Node leaves to the application, answered in the OpenAI shape like every other
 * gateway error: exactly one Host header (RFC 9112 3.2), an Expect the gateway cannot meet
 * (RFC 9110 10.1.1: 417), CONNECT (a gateway is no forward proxy), and a path whose
 * percent-encoding does not decode. Node's own answers to these are empty bodies or a closed socket.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { Duplex } from 'node:stream'
import { GatewayError } from '../errors.ts'
import { writeError } from './respond.ts'

// node:http through require, not an ESM import: building an ESM namespace of node:http reads its
// lazy WebSocket getters, which loads Node's bundled undici (about 12 MB resident) for nothing.
const { STATUS_CODES } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

/** A whole HTTP/1.1 error response as bytes, for sockets no ServerResponse owns. */
export function rawErrorResponse(err: GatewayError, extra = ''): string {
  const body = err.body()
  return `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`
}

/** Installs the Expect and CONNECT answers on the server (Node calls no request handler for them). */
export function conformHttp(server: Server): void {
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    writeError(res, new GatewayError('GW_ERR_EXPECTATION_FAILED', String(req.headers.expect)), { connection: 'close' })
  })
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy())
    socket.end(rawErrorResponse(new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', 'CONNECT; this gateway is not a forward proxy'), 'allow: GET, POST\r\n'))
  })
}

/**
 * Exactly one Host header on HTTP/1.1 (HTTP/1.0 may omit it), or the error to answer. Node keeps
 * only the first of several Host headers in `req.headers`, so the raw list is counted.
 */
export function hostError(req: IncomingMessage): GatewayError | null {
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && (name === 'host' || name === 'Host' || name.toLowerCase() === 'host')) hosts++
  }
  if (hosts === 1 || (hosts === 0 && req.httpVersion === '1.0')) return null
  return new GatewayError('GW_ERR_MALFORMED_REQUEST', hosts === 0 ? 'the Host header is missing' : 'more than one Host header')
}
