/**
 * A proxied response's head, stored on node:http's response as `writeHead(status, list)` stores
 * it, built in one piece.
 *
 * node:http builds a head by concatenation (`header += name + ': ' + value + '\r\n'` for every
 * line, then the status line, `Connection` and `Keep-Alive`), about ten strings made and one more
 * to flatten them per header line: over a kilobyte of garbage for a proxied answer's seven or
 * eight lines, the largest single share of what a request allocated. Here the lines are written
 * into a reused buffer and read out as one string, the head node:http then sends as if it had
 * built it (`res.write`, `res.end`, or chunk-writer.ts with the first chunk).
 *
 * Only the common case is built here, where node:http's answer is fixed and short: a status with
 * a body (not 1xx, 204 or 304) and its standard reason, no header set on the response before
 * (`setHeader`: CORS, rate-limit headers), a keep-alive HTTP/1.1 exchange under the server's
 * keep-alive settings, and none of the headers node:http reads (`Connection`, `Transfer-Encoding`,
 * `Keep-Alive`, `Expect`, `Trailer`, `Content-Disposition`), every name a token and every value
 * node:http's strict check accepts. Anything else goes through `res.writeHead`, unchanged.
 */
import type { ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { ClientResponse } from '../protocols/client-response.ts'

// As lean-handler.ts: node:http through require, so its ESM namespace does not load Node's undici.
const http = createRequire(import.meta.url)('node:http') as typeof import('node:http')

/** node:http's response state that `writeHead` sets or reads (not in its types). */
type NodeResponse = ServerResponse & {
  _header: string | null
  _headerSent: boolean
  _hasBody: boolean
  _last: boolean
  _contentLength: number | null
  _keepAliveTimeout: number
  _maxRequestsPerSocket?: number
  _defaultKeepAlive: boolean
  _removedConnection: boolean
  _removedContLen: boolean
  _removedTE: boolean
  _expect_continue: boolean
  chunkedEncoding: boolean
  shouldKeepAlive: boolean
  useChunkedEncodingByDefault: boolean
  maxRequestsOnConnectionReached: boolean
}

/** The symbol under which node:http keeps headers set with `setHeader` (null when none were). */
const kOutHeaders: symbol | undefined = Object.getOwnPropertySymbols(new http.OutgoingMessage()).find((s) => s.description === 'kOutHeaders')

/** This Node's response has every field the head is built from, as the Node it was written for. */
export const leanHeadSupported = ((): boolean => {
  if (kOutHeaders === undefined) return false
  const probe = new http.ServerResponse({ method: 'POST', httpVersionMajor: 1, httpVersionMinor: 1, headers: {} } as never) as unknown as NodeResponse
  const fields = ['_header', '_headerSent', '_hasBody', '_last', '_contentLength', '_keepAliveTimeout', '_defaultKeepAlive', '_removedConnection', '_removedContLen', '_removedTE', '_expect_continue', 'chunkedEncoding', 'shouldKeepAlive', 'useChunkedEncodingByDefault', 'maxRequestsOnConnectionReached', 'sendDate']
  return fields.every((f) => f in probe) && (probe as unknown as Record<symbol, unknown>)[kOutHeaders] === null && probe._header === null && probe.useChunkedEncodingByDefault === true
})()

/** RFC 9110 token, as node:http's `checkIsHttpToken`. */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/
/** What node:http's strict `checkInvalidHeaderChar` refuses. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/
/** Headers whose presence changes what node:http writes or keeps (its `matchHeader`, and Content-Disposition's encoding). */
const READ_BY_NODE = /^(?:connection|transfer-encoding|keep-alive|expect|trailer|content-disposition)$/i
const DATE = /^date$/i
const CONTENT_LENGTH = /^content-length$/i
const HEAD_END = '\r\n'
const CHUNKED_END = 'Transfer-Encoding: chunked\r\n\r\n'

/** Heads longer than this go through `writeHead` (node:http's own limit on a client is 16 KiB). */
const MAX_HEAD = 16 * 1024
const scratch = Buffer.allocUnsafeSlow(MAX_HEAD)

const statusLines = new Map<number, string>()
function statusLine(status: number): string | null {
  let line = statusLines.get(status)
  if (line === undefined) {
    const reason = http.STATUS_CODES[status]
    if (reason === undefined) return null
    statusLines.set(status, (line = `HTTP/1.1 ${status} ${reason}\r\n`))
  }
  return line
}

/** The `Keep-Alive` line for a timeout and a per-socket request limit, made once per pair. */
let keepAliveFor = -1
let keepAliveMaxFor = -1
let keepAliveLine = ''
function keepAlive(timeoutMs: number, max: number): string {
  if (timeoutMs !== keepAliveFor || max !== keepAliveMaxFor) {
    keepAliveFor = timeoutMs
    keepAliveMaxFor = max
    keepAliveLine = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(timeoutMs / 1000)}${max > 0 ? `, max=${max}` : ''}\r\n`
  }
  return keepAliveLine
}

/** node:http's `Date` line, made once a second. */
let dateSecond = -1
let dateText = ''
function date(): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== dateSecond) {
    dateSecond = second
    dateText = `Date: ${new Date(now).toUTCString()}\r\n`
  }
  return dateText
}

/**
 * `res.writeHead(status, list)` for a flat `[name, value, ...]` list: the head built in one piece
 * when it is the common case above, else node:http's own `writeHead`.
 */
export function writeResponseHead(res: ClientResponse, status: number, list: readonly string[]): void {
  if (!leanHeadSupported || !storeHead(res as NodeResponse, status, list)) res.writeHead(status, list as string[])
}

function storeHead(r: NodeResponse, status: number, list: readonly string[]): boolean {
  if (!(r instanceof http.ServerResponse) || r._header !== null || (r as unknown as Record<symbol, unknown>)[kOutHeaders!] !== null) return false
  if (status < 200 || status === 204 || status === 304 || status > 999) return false
  if (!r.shouldKeepAlive || r.maxRequestsOnConnectionReached || r._removedConnection || r._removedContLen || r._removedTE || r._expect_continue) return false
  if (!r._hasBody || !r.useChunkedEncodingByDefault || !r._defaultKeepAlive || !(r._keepAliveTimeout > 0) || r.chunkedEncoding || r._contentLength !== null) return false
  if (r.statusMessage !== undefined && r.statusMessage !== '' && r.statusMessage !== http.STATUS_CODES[status]) return false
  const first = statusLine(status)
  if (first === null) return false
  let at = scratch.write(first, 0, 'latin1')
  let dated = !r.sendDate
  let length = -1
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!
    const value = list[i + 1]!
    if (typeof name !== 'string' || typeof value !== 'string' || !TOKEN.test(name) || INVALID_VALUE.test(value) || READ_BY_NODE.test(name)) return false
    if (at + name.length + value.length + 4 > MAX_HEAD) return false
    at += scratch.write(name, at, 'latin1')
    scratch[at++] = 0x3a // ':'
    scratch[at++] = 0x20
    at += scratch.write(value, at, 'latin1')
    scratch[at++] = 0x0d
    scratch[at++] = 0x0a
    if (name.length === 4 && DATE.test(name)) dated = true
    else if (name.length === 14 && CONTENT_LENGTH.test(name)) length = +value
  }
  const dateLine = dated ? '' : date()
  const connection = keepAlive(r._keepAliveTimeout, ~~(r._maxRequestsPerSocket ?? 0))
  const end = length === -1 ? CHUNKED_END : HEAD_END
  if (at + dateLine.length + connection.length + end.length > MAX_HEAD) return false
  if (!dated) at += scratch.write(dateLine, at, 'latin1')
  at += scratch.write(connection, at, 'latin1')
  at += scratch.write(end, at, 'latin1')
  r.statusCode = status
  r.statusMessage = http.STATUS_CODES[status]!
  if (length !== -1) r._contentLength = length
  else r.chunkedEncoding = true
  r._header = scratch.toString('latin1', 0, at)
  r._headerSent = false
  return true
}
