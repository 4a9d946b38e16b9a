/**
 * A keep-alive pool of plain HTTP/1.1 connections to one origin, for the proxied path: what undici's
 * Pool does for an `http:` upstream with no pipelining, with a fraction of its work and garbage per
 * request. It speaks undici's dispatch interface (`dispatch(options, handler)`, the handler's
 * `onRequestStart` / `onResponseStart` / `onResponseData` / `onResponseEnd` / `onResponseError`,
 * a controller with `abort`, `pause` and `resume`) and raises undici's error codes, so attempts,
 * failover and error classification do not know which one carried a request.
 *
 * Why it is cheaper: every socket reads into one shared buffer (`onread`), so no stream chunk,
 * nextTick or event object is made per read; a request goes out as one buffer (head and body);
 * timeouts are deadlines checked by one sweeper per pool instead of timers per request; and a
 * response is parsed by a small strict parser over the bytes, not a parser callback per token.
 *
 * What it does not do (the upstream keeps undici for those): TLS, HTTP/2, pipelining.
 *
 * Framing is strict, since a proxy that guesses where a response ends can be made to hand one
 * client's bytes to another: a status line `HTTP/1.x NNN reason`, header lines `name: value` with
 * CRLF endings (no folding, no bare LF, no spaces before the colon), at most 16 KiB of head, one
 * Content-Length (digits only) or `Transfer-Encoding: chunked` (never both, no other coding),
 * chunk sizes in hex with optional extensions, trailers skipped. Anything else fails the request
 * with code `HPE_INVALID` and closes the connection. A response without either is read until the
 * connection closes. 1xx interim responses are skipped; 204, 304 and HEAD answers have no body.
 */
import { connect, type Socket } from 'node:net'
import type { Dispatcher } from 'undici'

export interface Http1PoolOptions {
  /** Most connections open at once. */
  readonly connections: number
  /** An idle connection is closed after this long (shortened by a server's `Keep-Alive: timeout`). */
  readonly keepAliveTimeoutMs: number
  /** A connection older than this is not reused; 0: never retired for its age. */
  readonly maxConnectionAgeMs: number
  /** 0 disables each of these, as in undici. */
  readonly connectTimeoutMs: number
  /** From the request written to the response's headers. */
  readonly headersTimeoutMs: number
  /** Longest silence between two reads of a response body (not counted while paused). */
  readonly bodyTimeoutMs: number
}

export interface PoolStats {
  connected: number
  free: number
  pending: number
  running: number
}

/** What `request()` resolves to: the whole body, read. */
export interface BufferedAnswer {
  readonly statusCode: number
  readonly headers: Record<string, string | string[]>
  readonly body: { text(): Promise<string>; json(): Promise<unknown>; dump(): Promise<void> }
}

export type ResponseHeaders = Record<string, string | string[]>

/** A transport failure with undici's code, so `classifyUpstreamError` reads it the same. */
/**
 * Whether the chunk `onResponseData` was just given is a chunked body's last bytes with its end
 * read behind them (`PoolRequest.ending`): `onResponseEnd` follows at once. False for any other
 * controller (undici's), which says nothing of the kind.
 */
export function endFollows(controller: Dispatcher.DispatchController): boolean {
  return (controller as { ending?: boolean }).ending === true
}

export class UpstreamTransportError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'UpstreamTransportError'
    this.code = code
  }
}

const MAX_HEAD_BYTES = 16 * 1024
/** Past this a request body is written after its head (writev) instead of copied behind it. */
const COPY_BODY_BELOW = 64 * 1024
/** What `request()` holds of a body at most (health probes, model lists, pod metrics). */
const MAX_BUFFERED_BODY = 32 * 1024 * 1024
/** Reads of every pool's sockets land here; a read is consumed before the next one starts. */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)
const NO_TRAILERS: Record<string, string> = Object.freeze({}) as Record<string, string>
const REQUEST_CONTEXT = Object.freeze({})
const CRLFCRLF = Buffer.from('\r\n\r\n')
const HTTP_1 = Buffer.from('HTTP/1.')
/** CR, LF and NUL would split a header line; a character past Latin-1 cannot be written as one byte. */
const INVALID_VALUE = /[\r\n\0\u0100-\uffff]/
const EMPTY = Buffer.alloc(0)
const KEEP_ALIVE_END = 'connection: keep-alive\r\n\r\n'
const KEEP_ALIVE_EMPTY = 'connection: keep-alive\r\ncontent-length: 0\r\n\r\n'
const KEEP_ALIVE_LENGTH = 'connection: keep-alive\r\ncontent-length: '
const INVALID_PATH = /[^\x21-\x7e]/

// Body framing states.
const HEAD = 0
const FIXED = 1
const CHUNK_SIZE = 2
const CHUNK_DATA = 3
const CHUNK_END = 4
const TRAILERS = 5
const UNTIL_CLOSE = 6
/** A response without a body (HEAD, 204, 304): complete at its head. */
const NONE = 7

function framingError(detail: string): UpstreamTransportError {
  return new UpstreamTransportError('HPE_INVALID', `invalid HTTP response from the upstream: ${detail}`)
}

/** One dispatch: the controller undici's handlers are given, and what is written. */
class PoolRequest implements Dispatcher.DispatchController {
  readonly pool: Http1Pool
  readonly handler: Dispatcher.DispatchHandler
  readonly method: string
  /**
   * The head, and behind it the body when it is small enough to copy; EMPTY once written. Kept for
   * a stream's whole life, this small slice of Node's 8 KiB buffer pool would pin its slab (and the
   * other streams' chunks cut from it) as long as the stream stays open.
   */
  bytes: Buffer
  /** A large body, written after `bytes`; null when it is in `bytes` (or there is none, or once written). */
  body: Buffer | null
  conn: Connection | null
  #aborted: boolean
  #paused: boolean
  /** onResponseEnd or onResponseError was called: nothing more is said to the handler. */
  done: boolean
  reason: Error | null
  /**
   * True while the handler is given a chunked body's last bytes with its terminating chunk read
   * behind them: `onResponseEnd` follows before anything else runs (a writer may hold those bytes
   * for the client's own terminating chunk).
   */
  ending: boolean

  constructor(pool: Http1Pool, handler: Dispatcher.DispatchHandler, method: string, bytes: Buffer, body: Buffer | null) {
    this.pool = pool
    this.handler = handler
    this.method = method
    this.bytes = bytes
    this.body = body
    this.conn = null
    this.#aborted = false
    this.#paused = false
    this.done = false
    this.reason = null
    this.ending = false
  }

  get aborted(): boolean {
    return this.#aborted
  }

  get paused(): boolean {
    return this.#paused
  }

  abort(reason: Error): void {
    if (this.#aborted || this.done) return
    this.#aborted = true
    this.reason = reason
    const conn = this.conn
    if (conn !== null) conn.abortRequest(this, reason)
    else {
      this.pool.unqueue(this)
      this.fail(reason)
    }
  }

  pause(): void {
    if (this.done || this.#paused) return
    this.#paused = true
    this.conn?.pauseReads()
  }

  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    this.conn?.resumeReads()
  }

  fail(err: Error): void {
    if (this.done) return
    this.done = true
    this.handler.onResponseError?.(this, err)
  }
}

class Connection {
  readonly pool: Http1Pool
  readonly socket: Socket
  /** performance.now() ms when the connection was established (when it started opening, until then). */
  connectedAt: number
  connected: boolean
  closed: boolean
  request: PoolRequest | null
  /** performance.now() ms: when the current phase started (connect, request written, last read, idle). */
  since: number
  /** Idle connections close after this (the pool's keep-alive, or the server's shorter hint). */
  keepAliveMs: number
  // The response being read.
  #state: number
  #head: Buffer | null
  #status: number
  #headers: ResponseHeaders | null
  #remaining: number
  #line: string
  #keepAlive: boolean
  #noBody: boolean
  /**
   * The body bytes of the current read not handed over yet, as [at, length] pairs (`#release`):
   * what one read brought goes to the handler as one chunk, so an upstream's burst (a stream's
   * last token, its usage and `[DONE]`) leaves for the client in one write, as it came. Reused
   * from read to read; empty between reads.
   */
  readonly #held: number[]

  constructor(pool: Http1Pool, host: string, port: number) {
    this.pool = pool
    this.connectedAt = performance.now()
    this.since = this.connectedAt
    this.connected = false
    this.closed = false
    this.request = null
    this.keepAliveMs = pool.options.keepAliveTimeoutMs
    this.#state = HEAD
    this.#head = null
    this.#status = 0
    this.#headers = null
    this.#remaining = 0
    this.#line = ''
    this.#keepAlive = true
    this.#noBody = false
    this.#held = []
    this.socket = connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000, onread: { buffer: READ_BUFFER, callback: (n: number) => this.#onRead(n) } })
    this.socket.on('connect', () => this.#onConnect())
    this.socket.on('error', (err) => this.#onError(err))
    this.socket.on('end', () => this.#onEnd())
    this.socket.on('close', () => this.#onError(null))
  }

  #onConnect(): void {
    this.connected = true
    this.since = performance.now()
    this.connectedAt = this.since
    this.pool.connected(this)
  }

  /** Writes `req` on this (connected, idle) connection. */
  start(req: PoolRequest): void {
    this.request = req
    req.conn = this
    this.since = performance.now()
    this.#state = HEAD
    this.#keepAlive = true
    this.#noBody = req.method === 'HEAD'
    const body = req.body
    if (body === null) this.socket.write(req.bytes)
    else {
      this.socket.cork()
      this.socket.write(req.bytes)
      this.socket.write(body)
      this.socket.uncork()
    }
    // The socket holds what it still has to send; a request is written once.
    req.bytes = EMPTY
    req.body = null
    if (req.paused) this.pauseReads()
  }

  pauseReads(): void {
    if (!this.closed) this.socket.pause()
  }

  resumeReads(): void {
    if (!this.closed) {
      this.since = performance.now()
      this.socket.resume()
    }
  }

  /** The gateway gave up on the request: its response can no longer be told apart, so the connection goes. */
  abortRequest(req: PoolRequest, reason: Error): void {
    if (this.request === req) this.destroy(reason)
  }

  /** The request leaves the connection (answered, or failed with it). */
  #detach(): PoolRequest | null {
    const req = this.request
    if (req === null) return null
    this.request = null
    req.conn = null
    this.pool.requestLeft()
    return req
  }

  /**
   * Closes the connection. A request on it fails with `err` (none: "other side closed"); a
   * connection that was still opening hands `err` to the request waiting longest.
   */
  destroy(err: Error | null = null): void {
    if (this.closed) return
    this.closed = true
    this.socket.destroy()
    const req = this.#detach()
    this.pool.removed(this, req === null ? err : null)
    req?.fail(err ?? new UpstreamTransportError('UND_ERR_SOCKET', 'other side closed'))
  }

  #onError(err: Error | null): void {
    this.destroy(err)
  }

  #onEnd(): void {
    if (this.closed) return
    const req = this.request
    if (req !== null && this.#state === UNTIL_CLOSE) {
      // The body was delimited by the close: this is its end.
      this.#complete(req, false)
      return
    }
    this.destroy()
  }

  /** Checks this connection's deadline (the pool's sweeper, a few times per timeout). */
  sweep(now: number): void {
    const o = this.pool.options
    const elapsed = now - this.since
    if (!this.connected) {
      if (o.connectTimeoutMs > 0 && elapsed > o.connectTimeoutMs) this.destroy(new UpstreamTransportError('UND_ERR_CONNECT_TIMEOUT', `connect timeout (${o.connectTimeoutMs} ms)`))
      return
    }
    const req = this.request
    if (req === null) {
      if (elapsed > this.keepAliveMs) this.destroy()
      return
    }
    if (this.#state === HEAD) {
      if (o.headersTimeoutMs > 0 && elapsed > o.headersTimeoutMs) this.destroy(new UpstreamTransportError('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error'))
    } else if (!req.paused && o.bodyTimeoutMs > 0 && elapsed > o.bodyTimeoutMs) {
      this.destroy(new UpstreamTransportError('UND_ERR_BODY_TIMEOUT', 'Body Timeout Error'))
    }
  }

  #onRead(n: number): boolean {
    this.#read(n)
    return true
  }

  #read(n: number): void {
    if (this.closed) return
    const req = this.request
    if (req === null) {
      // Bytes nobody asked for: the connection cannot be trusted with the next request.
      this.destroy()
      return
    }
    this.since = performance.now()
    try {
      this.#parse(req, READ_BUFFER, 0, n)
    } catch (err) {
      if (err instanceof UpstreamTransportError) this.destroy(err)
      else throw err
    }
  }

  /** Parses one read; the body bytes it held are handed over at its end, or before a failure it met. */
  #parse(req: PoolRequest, buf: Buffer, at: number, end: number): void {
    try {
      this.#parseRead(req, buf, at, end)
    } finally {
      this.#release(req, buf, false)
    }
  }

  #parseRead(req: PoolRequest, buf: Buffer, at: number, end: number): void {
    while (at < end) {
      if (this.request !== req || this.closed) return
      switch (this.#state) {
        case HEAD:
          at = this.#readHead(req, buf, at, end)
          break
        case FIXED: {
          const take = Math.min(this.#remaining, end - at)
          this.#remaining -= take
          this.#hold(at, take)
          at += take
          if (this.#remaining === 0) return this.#finish(req, buf, end - at)
          break
        }
        case CHUNK_SIZE:
        case CHUNK_END:
        case TRAILERS: {
          const lf = buf.indexOf(0x0a, at)
          if (this.#line === '' && lf !== -1 && lf < end && lf > at && buf[lf - 1] === 0x0d && this.#state !== TRAILERS && lf - at < MAX_HEAD_BYTES) {
            // The whole line is in this read (almost always): read it in place, no string made.
            this.#framingLine(buf, at, lf - 1)
            at = lf + 1
            break
          }
          const stop = lf === -1 || lf >= end ? end : lf + 1
          this.#line += buf.toString('latin1', at, stop)
          if (this.#line.length > MAX_HEAD_BYTES) throw framingError('chunk framing line too long')
          at = stop
          if (stop === end && lf !== stop - 1) break
          const line = this.#line
          this.#line = ''
          if (!line.endsWith('\r\n')) throw framingError('bare LF in chunked framing')
          if (this.#state === TRAILERS) {
            if (line.length === 2) return this.#finish(req, buf, end - at)
          } else {
            // A line split across reads (rare): the same reading as in place, on its bytes.
            const bytes = Buffer.from(line, 'latin1')
            this.#framingLine(bytes, 0, bytes.length - 2)
          }
          break
        }
        case CHUNK_DATA: {
          const take = Math.min(this.#remaining, end - at)
          this.#remaining -= take
          this.#hold(at, take)
          at += take
          if (this.#remaining === 0) this.#state = CHUNK_END
          break
        }
        case UNTIL_CLOSE:
          this.#hold(at, end - at)
          at = end
          break
      }
    }
  }

  /** Body bytes at `[at, at + length)` of the current read, handed over with the rest of the read. */
  #hold(at: number, length: number): void {
    if (length !== 0) this.#held.push(at, length)
  }

  /**
   * Hands the held body bytes of the read in `buf` to the handler, as one chunk of its own (the
   * read buffer is reused by the next read). `ending`: the response's end follows at once.
   */
  #release(req: PoolRequest, buf: Buffer, ending: boolean): void {
    const held = this.#held
    if (held.length === 0) return
    if (req.done) {
      held.length = 0
      return
    }
    let total = 0
    for (let i = 1; i < held.length; i += 2) total += held[i]!
    const chunk = Buffer.allocUnsafe(total)
    for (let i = 0, to = 0; i < held.length; i += 2) to += buf.copy(chunk, to, held[i]!, held[i]! + held[i + 1]!)
    held.length = 0
    req.ending = ending
    req.handler.onResponseData?.(req, chunk)
    req.ending = false
  }

  /** Collects the head; when whole, parses it and returns where the body starts in `buf`. */
  #readHead(req: PoolRequest, buf: Buffer, at: number, end: number): number {
    let head: Buffer
    let start: number
    let found: number
    let bodyAt: number
    const held = this.#head
    if (held === null) {
      // `buf` is the shared read buffer: bytes past `end` are an older read's, so a match must end by `end`.
      found = buf.indexOf(CRLFCRLF, at)
      if (found === -1 || found + 4 > end) {
        if (end - at > MAX_HEAD_BYTES) throw new UpstreamTransportError('UND_ERR_HEADERS_OVERFLOW', 'response headers larger than 16 KiB')
        this.#head = Buffer.from(buf.subarray(at, end))
        return end
      }
      head = buf
      start = at
      bodyAt = found + 4
    } else {
      const joined = Buffer.concat([held, buf.subarray(at, end)])
      found = joined.indexOf(CRLFCRLF, Math.max(0, held.length - 3))
      if (found === -1) {
        if (joined.length > MAX_HEAD_BYTES) throw new UpstreamTransportError('UND_ERR_HEADERS_OVERFLOW', 'response headers larger than 16 KiB')
        this.#head = joined
        return end
      }
      this.#head = null
      head = joined
      start = 0
      // Past the bytes of `buf` that completed the head.
      bodyAt = at + (found + 4 - held.length)
    }
    if (found + 4 - start > MAX_HEAD_BYTES) throw new UpstreamTransportError('UND_ERR_HEADERS_OVERFLOW', 'response headers larger than 16 KiB')
    this.#parseHead(head, start, found + 2)
    const status = this.#status
    if (status < 200) {
      if (status === 101) throw framingError('an unexpected protocol upgrade (101)')
      return bodyAt // an interim answer (100 Continue, 103 Early Hints): the real one follows
    }
    const headers = this.#headers!
    this.#headers = null
    // Neither a length nor chunked: the body runs until the connection closes.
    if (this.#state === HEAD) this.#state = UNTIL_CLOSE
    req.handler.onResponseStart?.(req, status, headers, '')
    if (this.request !== req || this.closed) return bodyAt
    if (this.#state === NONE || (this.#state === FIXED && this.#remaining === 0)) {
      this.#finish(req, buf, bodyAt < end ? end - bodyAt : 0)
      return end
    }
    if (this.#state === UNTIL_CLOSE) this.#keepAlive = false
    return bodyAt
  }

  /** Parses the lines in [at, end): each ends with CRLF (the blank line after them is not included). */
  #parseHead(buf: Buffer, at: number, end: number): void {
    // Status line: HTTP/1.x SP 3DIGIT [SP reason]
    const lineEnd = buf.indexOf(0x0d, at)
    if (lineEnd === -1 || lineEnd + 2 > end || buf[lineEnd + 1] !== 0x0a) throw framingError('no CRLF after the status line')
    if (lineEnd - at < 12 || buf[at] !== 0x48 || HTTP_1.compare(buf, at, at + 7) !== 0 || buf[at + 8] !== 0x20) throw framingError('not an HTTP/1.x status line')
    const minor = buf[at + 7]
    if (minor !== 0x31 && minor !== 0x30) throw framingError('not an HTTP/1.x status line')
    const d0 = buf[at + 9]! - 0x30
    const d1 = buf[at + 10]! - 0x30
    const d2 = buf[at + 11]! - 0x30
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (lineEnd - at > 12 && buf[at + 12] !== 0x20)) throw framingError('invalid status code')
    this.#status = d0 * 100 + d1 * 10 + d2
    for (let i = at + 13; i < lineEnd; i++) {
      const c = buf[i]!
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw framingError('a control character in the reason phrase')
    }
    let keepAlive = minor === 0x31
    const headers: ResponseHeaders = {}
    let length = -1
    let chunked = false
    let p = lineEnd + 2
    while (p < end) {
      const eol = buf.indexOf(0x0d, p)
      if (eol === -1 || eol + 2 > end || buf[eol + 1] !== 0x0a) throw framingError('a header line without CRLF')
      const colon = buf.indexOf(0x3a, p)
      if (colon === -1 || colon > eol || colon === p) throw framingError('a header line without a name')
      for (let i = p; i < colon; i++) if (!TOKEN[buf[i]!]) throw framingError('an invalid character in a header name')
      for (let i = colon + 1; i < eol; i++) {
        const c = buf[i]!
        if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw framingError('a control character in a header value')
      }
      const common = commonHeader(buf, p, colon)
      const name = common !== null ? common.name : buf.toString('latin1', p, colon).toLowerCase()
      let vs = colon + 1
      let ve = eol
      while (vs < ve && (buf[vs] === 0x20 || buf[vs] === 0x09)) vs++
      while (ve > vs && (buf[ve - 1] === 0x20 || buf[ve - 1] === 0x09)) ve--
      const value = common !== null ? headerValue(common, buf, vs, ve) : buf.toString('latin1', vs, ve)
      const prior = headers[name]
      if (prior === undefined) headers[name] = value
      else if (typeof prior === 'string') headers[name] = [prior, value]
      else prior.push(value)
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) throw framingError('an invalid Content-Length')
        const n = Number(value)
        if (length !== -1 && length !== n) throw framingError('conflicting Content-Length headers')
        length = n
      } else if (name === 'transfer-encoding') {
        if (chunked || value.toLowerCase() !== 'chunked') throw framingError(`an unsupported Transfer-Encoding (${value})`)
        chunked = true
      } else if (name === 'connection') {
        const v = value.toLowerCase()
        if (v.includes('close')) keepAlive = false
        else if (v.includes('keep-alive')) keepAlive = true
      } else if (name === 'keep-alive') {
        const seconds = keepAliveSeconds(value)
        // Close a second before the server says it will, as undici does.
        if (seconds !== -1) this.keepAliveMs = Math.max(0, Math.min(this.pool.options.keepAliveTimeoutMs, seconds * 1000 - 1000))
      }
      p = eol + 2
    }
    if (chunked && length !== -1) throw framingError('both Content-Length and Transfer-Encoding')
    this.#keepAlive = keepAlive
    this.#headers = headers
    if (this.#status < 200) return
    if (this.#noBody || this.#status === 204 || this.#status === 304) this.#state = NONE
    else if (chunked) this.#state = CHUNK_SIZE
    else if (length !== -1) {
      this.#state = FIXED
      this.#remaining = length
    } else this.#state = HEAD // read until close, decided by the caller
  }

  /** A complete CHUNK_END or CHUNK_SIZE line, `buf[start, cr)` before its CRLF. */
  #framingLine(buf: Buffer, start: number, cr: number): void {
    if (this.#state === CHUNK_END) {
      if (cr !== start) throw framingError('chunk data longer than its size')
      this.#state = CHUNK_SIZE
      return
    }
    const size = chunkSize(buf, start, cr)
    if (size === 0) this.#state = TRAILERS
    else {
      this.#remaining = size
      this.#state = CHUNK_DATA
    }
  }

  /**
   * The response is complete; `leftover` bytes followed it in the same read. What the read held
   * of its body goes first, marked `ending` when a chunked body's terminating chunk came with it.
   */
  #finish(req: PoolRequest, buf: Buffer, leftover: number): void {
    this.#release(req, buf, this.#state === TRAILERS)
    this.#complete(req, leftover === 0 && this.#keepAlive)
  }

  #complete(req: PoolRequest, reusable: boolean): void {
    this.#detach()
    this.#state = HEAD
    if (reusable && !req.aborted) {
      if (req.paused) this.socket.resume()
      this.pool.released(this)
    } else this.destroy()
    if (req.done) return
    req.done = true
    req.handler.onResponseEnd?.(req, NO_TRAILERS)
  }
}

/**
 * A chunk size line, `buf[start, cr)` with its CRLF already checked: hex digits, then optional
 * `;extensions` (or whitespace before them).
 */
function chunkSize(buf: Buffer, start: number, cr: number): number {
  let n = 0
  let i = start
  for (; i < cr; i++) {
    const c = buf[i]!
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1
    if (d === -1) break
    n = n * 16 + d
    if (i - start >= 13) throw framingError('a chunk size too large')
  }
  if (i === start) throw framingError('an invalid chunk size')
  if (i < cr) {
    const c = buf[i]!
    if (c !== 0x3b && c !== 0x20 && c !== 0x09) throw framingError('an invalid chunk size')
  }
  return n
}

/** RFC 9110 token characters. */
const TOKEN: boolean[] = Array.from({ length: 256 }, (_, c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)))

/**
 * A header most responses carry: its lowercase name, made once, and the last value read for it,
 * kept with its bytes, so a response repeating it (the same type, length, `keep-alive`, or `date`
 * within the second) reuses the string instead of making another.
 */
interface CommonHeader {
  readonly name: string
  readonly bytes: Buffer
  value: string
  readonly valueBytes: Buffer
  valueLength: number
}
/** Longest value remembered per common header. */
const MAX_REMEMBERED_VALUE = 64
const COMMON_NAMES = ['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding', 'server', 'cache-control', 'x-request-id', 'vary', 'etag']
const COMMON_BY_LENGTH = new Map<number, CommonHeader[]>()
for (const name of COMMON_NAMES) {
  const list = COMMON_BY_LENGTH.get(name.length) ?? []
  list.push({ name, bytes: Buffer.from(name), value: '', valueBytes: Buffer.alloc(MAX_REMEMBERED_VALUE), valueLength: -1 })
  COMMON_BY_LENGTH.set(name.length, list)
}

/** The common header named by `buf[start, end)` (any case), or null. */
function commonHeader(buf: Buffer, start: number, end: number): CommonHeader | null {
  const candidates = COMMON_BY_LENGTH.get(end - start)
  if (candidates !== undefined) {
    for (const c of candidates) {
      let i = 0
      const bytes = c.bytes
      for (; i < bytes.length; i++) if ((buf[start + i]! | 0x20) !== bytes[i]) break
      if (i === bytes.length) return c
    }
  }
  return null
}

/** The value in `buf[start, end)`: the string read last time for this header when the bytes are the same. */
function headerValue(header: CommonHeader, buf: Buffer, start: number, end: number): string {
  const length = end - start
  if (length === header.valueLength) {
    const remembered = header.valueBytes
    let i = 0
    while (i < length && buf[start + i] === remembered[i]) i++
    if (i === length) return header.value
  }
  const value = buf.toString('latin1', start, end)
  if (length <= MAX_REMEMBERED_VALUE) {
    buf.copy(header.valueBytes, 0, start, end)
    header.valueLength = length
    header.value = value
  }
  return value
}

let lastKeepAlive = ''
let lastKeepAliveSeconds = -1
/** `timeout=<seconds>` of a Keep-Alive header, or -1; the same value (the same string, see headerValue) is not read twice. */
function keepAliveSeconds(value: string): number {
  if (value !== lastKeepAlive) {
    const m = /timeout=(\d+)/i.exec(value)
    lastKeepAliveSeconds = m !== null ? Number(m[1]) : -1
    lastKeepAlive = value
  }
  return lastKeepAliveSeconds
}

/** A header list as the `name: value\r\n` lines of a request head, and whether it names the Host. */
interface EncodedHeaders {
  readonly bytes: Buffer
  readonly host: boolean
}

const NO_LINES: EncodedHeaders = Object.freeze({ bytes: EMPTY, host: false })

/**
 * Checks a flat `[name, value, ...]` list (CR, LF, NUL or a character past Latin-1 in either is
 * refused) and returns the bytes its `name: value\r\n` lines take.
 */
function linesLength(list: readonly string[]): number {
  let length = 0
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!
    const value = list[i + 1]!
    if (INVALID_VALUE.test(value) || INVALID_VALUE.test(name)) throw new UpstreamTransportError('UND_ERR_INVALID_ARG', `invalid ${name} header`)
    length += name.length + value.length + 4
  }
  return length
}

/** The list names the Host. */
function namesHost(list: readonly string[]): boolean {
  for (let i = 0; i < list.length; i += 2) if (list[i]!.length === 4 && list[i]!.toLowerCase() === 'host') return true
  return false
}

/** How many decimal digits `n` (a positive integer) takes. */
function decimalDigits(n: number): number {
  let digits = 1
  for (let rest = Math.floor(n / 10); rest !== 0; rest = Math.floor(rest / 10)) digits++
  return digits
}

/** Writes a checked list's lines into `out` at `at`; returns where they end. */
function writeLines(list: readonly string[], out: Buffer, at: number): number {
  for (let i = 0; i < list.length; i += 2) {
    at += out.write(list[i]!, at, 'latin1')
    out[at++] = 0x3a
    out[at++] = 0x20
    at += out.write(list[i + 1]!, at, 'latin1')
    out[at++] = 0x0d
    out[at++] = 0x0a
  }
  return at
}

function encodeLines(list: readonly string[]): EncodedHeaders {
  const bytes = Buffer.allocUnsafe(linesLength(list))
  writeLines(list, bytes, 0)
  return { bytes, host: namesHost(list) }
}

export class Http1Pool {
  readonly options: Http1PoolOptions
  readonly #host: string
  readonly #port: number
  /** `host: <authority>\r\n`, sent unless the request names its own. */
  readonly #hostLine: string
  readonly #all: Connection[]
  /** Connected and free, the most recently used last. */
  readonly #idle: Connection[]
  /** Waiting for a connection, in order. */
  #queue: PoolRequest[]
  /** Connections being opened, and the requests they were opened for. */
  #connecting: number
  #running: number
  #sweeper: NodeJS.Timeout | null
  readonly #sweepMs: number
  #closing: boolean
  #destroyed: boolean
  readonly #drained: (() => void)[]
  /** Frozen header lists (an upstream's own) encoded on first use. */
  readonly #encoded: WeakMap<readonly string[], EncodedHeaders>

  constructor(origin: string, options: Http1PoolOptions, hostHeader: string | null = null) {
    const url = new URL(origin)
    if (url.protocol !== 'http:') throw new Error(`Http1Pool speaks plain HTTP only, not ${url.protocol}`)
    this.options = options
    this.#host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    this.#port = url.port === '' ? 80 : Number(url.port)
    this.#hostLine = `host: ${hostHeader ?? url.host}\r\n`
    this.#all = []
    this.#idle = []
    this.#queue = []
    this.#connecting = 0
    this.#running = 0
    this.#sweeper = null
    const bounds = [options.connectTimeoutMs, options.headersTimeoutMs, options.bodyTimeoutMs, options.keepAliveTimeoutMs].filter((t) => t > 0)
    this.#sweepMs = Math.max(5, Math.min(500, Math.floor(Math.min(...bounds, 5_000) / 10)))
    this.#closing = false
    this.#destroyed = false
    this.#drained = []
    this.#encoded = new WeakMap()
  }

  get stats(): PoolStats {
    return { connected: this.#all.length - this.#connecting, free: this.#idle.length, pending: this.#queue.length, running: this.#running }
  }

  /** Open connections, for the connection-age watch (tests). */
  get openConnections(): number {
    return this.#all.length
  }

  /**
   * undici's `dispatch`, plus `extra`: headers sent after `options.headers`, per request (the
   * forwarded client headers), so a fixed list (an upstream's own, frozen) is encoded and checked
   * once, not on every request.
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, extra: readonly string[] | null = null): boolean {
    const method = options.method
    const path = options.path
    let req: PoolRequest
    try {
      if (this.#closing || this.#destroyed) throw new UpstreamTransportError(this.#destroyed ? 'UND_ERR_DESTROYED' : 'UND_ERR_CLOSED', this.#destroyed ? 'The client is destroyed' : 'The client is closed')
      if (typeof path !== 'string' || path[0] !== '/' || INVALID_PATH.test(path)) throw new UpstreamTransportError('UND_ERR_INVALID_ARG', 'invalid request path')
      const body = options.body == null ? null : typeof options.body === 'string' ? Buffer.from(options.body) : options.body instanceof Uint8Array ? (options.body as Buffer) : null
      if (options.body != null && body === null) throw new UpstreamTransportError('UND_ERR_INVALID_ARG', 'the request body must be bytes')
      req = new PoolRequest(this, handler, method, this.#bytesOf(method, path, options.headers, extra, body), body !== null && body.length >= COPY_BODY_BELOW ? body : null)
    } catch (err) {
      const failed = new PoolRequest(this, handler, method, EMPTY, null)
      handler.onRequestStart?.(failed, REQUEST_CONTEXT)
      process.nextTick(() => failed.fail(err as Error))
      return false
    }
    handler.onRequestStart?.(req, REQUEST_CONTEXT)
    if (req.aborted) return true
    this.#assign(req)
    return true
  }

  /**
   * The request's bytes: its head written straight into one buffer (no string built per header),
   * with the body copied behind it unless it is large. A frozen header list's lines are encoded
   * and checked on its first request and reused after.
   */
  #bytesOf(method: string, path: string, headers: Dispatcher.DispatchOptions['headers'], extra: readonly string[] | null, body: Buffer | null): Buffer {
    let fixed: EncodedHeaders = NO_LINES
    if (headers != null) {
      if (!Array.isArray(headers)) throw new UpstreamTransportError('UND_ERR_INVALID_ARG', 'headers must be a flat [name, value, ...] list')
      const list = headers as readonly string[]
      if (Object.isFrozen(list)) {
        let cached = this.#encoded.get(list)
        if (cached === undefined) this.#encoded.set(list, (cached = encodeLines(list)))
        fixed = cached
      } else fixed = encodeLines(list)
    }
    // The per-request lines are checked and counted here and written straight into the request's buffer.
    const more = extra === null ? 0 : linesLength(extra)
    const hostLine = fixed.host || (extra !== null && namesHost(extra)) ? '' : this.#hostLine
    // The Content-Length's digits are written in place, not made into a string.
    const tail = body === null ? KEEP_ALIVE_END : body.length === 0 ? KEEP_ALIVE_EMPTY : KEEP_ALIVE_LENGTH
    const digits = tail === KEEP_ALIVE_LENGTH ? decimalDigits(body!.length) : 0
    // ' ', then ' HTTP/1.1\r\n'; a length's digits, then CRLF CRLF
    const length = method.length + path.length + 12 + fixed.bytes.length + more + hostLine.length + tail.length + (digits === 0 ? 0 : digits + 4)
    const copied = body !== null && body.length < COPY_BODY_BELOW
    const out = Buffer.allocUnsafe(copied ? length + body.length : length)
    let at = out.write(method, 0, 'latin1')
    out[at++] = 0x20
    at += out.write(path, at, 'latin1')
    at += out.write(' HTTP/1.1\r\n', at, 'latin1')
    at += fixed.bytes.copy(out, at)
    if (extra !== null) at = writeLines(extra, out, at)
    if (hostLine !== '') at += out.write(hostLine, at, 'latin1')
    at += out.write(tail, at, 'latin1')
    if (digits !== 0) {
      for (let i = at + digits - 1, n = body!.length; i >= at; i--, n = Math.floor(n / 10)) out[i] = 0x30 + (n % 10)
      at += digits
      at += CRLFCRLF.copy(out, at)
    }
    if (at !== length) throw new Error(`request head is ${at} bytes, ${length} were counted`)
    if (copied) body.copy(out, at)
    return out
  }

  /** A free connection for `req` now, a new one opened for it, or a place in the queue. */
  #assign(req: PoolRequest): void {
    const conn = this.#takeIdle()
    if (conn !== null) {
      this.#running++
      conn.start(req)
      return
    }
    this.#queue.push(req)
    if (this.#all.length < this.options.connections) this.#open()
  }

  /**
   * The most recently used idle connection (its socket and buffers are the warmest), unless the
   * one idle longest is halfway to its keep-alive deadline: then that one takes the request. Under
   * steady traffic every warm connection is used before it expires, so the pool does not close
   * idle connections only for the pool sizer to reopen them (connects and warm-up requests every
   * keep-alive period, in one burst that the requests of that moment wait behind).
   */
  #takeIdle(): Connection | null {
    const idle = this.#idle
    if (idle.length === 0) return null
    const now = performance.now()
    const maxAge = this.options.maxConnectionAgeMs
    while (idle.length > 0) {
      const oldest = idle[0]!
      const conn = idle.length > 1 && oldest.keepAliveMs > 0 && now - oldest.since > oldest.keepAliveMs / 2 ? idle.shift()! : idle.pop()!
      if (maxAge > 0 && now - conn.connectedAt > maxAge) conn.destroy()
      else return conn
    }
    return null
  }

  #open(): void {
    this.#connecting++
    const conn = new Connection(this, this.#host, this.#port)
    this.#all.push(conn)
    if (this.#sweeper === null) {
      this.#sweeper = setInterval(sweep, this.#sweepMs, this)
      this.#sweeper.unref()
    }
  }

  /** A new connection is up: it serves the queue's head, or waits idle. */
  connected(conn: Connection): void {
    this.#connecting--
    this.#next(conn)
  }

  /** A request left its connection. */
  requestLeft(): void {
    this.#running--
  }

  /** A request on `conn` ended and the connection may be reused. */
  released(conn: Connection): void {
    const maxAge = this.options.maxConnectionAgeMs
    if (this.#closing || (maxAge > 0 && performance.now() - conn.connectedAt > maxAge)) {
      conn.destroy()
      return
    }
    this.#next(conn)
  }

  #next(conn: Connection): void {
    const req = this.#queue.shift()
    if (req !== undefined) {
      this.#running++
      conn.start(req)
      return
    }
    conn.since = performance.now()
    conn.keepAliveMs = Math.min(conn.keepAliveMs, this.options.keepAliveTimeoutMs)
    this.#idle.push(conn)
    this.#checkDrained()
  }

  /**
   * A connection closed (by either side, or failed to open). One that never opened fails the
   * request waiting longest with `err`, as undici fails the requests queued on a client that
   * cannot connect; the others get connections of their own.
   */
  removed(conn: Connection, err: Error | null): void {
    const all = this.#all
    const i = all.indexOf(conn)
    if (i !== -1) {
      all[i] = all[all.length - 1]!
      all.pop()
    }
    const j = this.#idle.indexOf(conn)
    if (j !== -1) this.#idle.splice(j, 1)
    if (all.length === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper)
      this.#sweeper = null
    }
    if (!conn.connected) {
      this.#connecting--
      if (err !== null) this.#queue.shift()?.fail(err)
    }
    if (!this.#closing) while (this.#queue.length > this.#connecting && this.#all.length < this.options.connections) this.#open()
    this.#checkDrained()
  }

  unqueue(req: PoolRequest): void {
    const i = this.#queue.indexOf(req)
    if (i !== -1) this.#queue.splice(i, 1)
  }

  sweep(): void {
    const now = performance.now()
    const all = this.#all
    for (let i = all.length - 1; i >= 0; i--) all[i]?.sweep(now)
  }

  /**
   * One GET (or other bodiless request) with the body read whole, for health probes, model lists
   * and warm-up: any answer proves a connection.
   */
  request(options: { path: string; method: string; headers?: string[]; signal?: AbortSignal }): Promise<BufferedAnswer> {
    return new Promise((resolve, reject) => {
      const handler = new BufferingHandler(resolve, reject, options.signal ?? null)
      this.dispatch({ path: options.path, method: options.method, headers: options.headers ?? null }, handler)
    })
  }

  #checkDrained(): void {
    if (!this.#closing || this.#running > 0 || this.#queue.length > 0) return
    for (const conn of [...this.#idle]) conn.destroy()
    for (const done of this.#drained.splice(0)) done()
  }

  /** Refuses new requests, lets those in flight finish, then closes every connection. */
  close(): Promise<void> {
    this.#closing = true
    return new Promise((resolve) => {
      this.#drained.push(resolve)
      this.#checkDrained()
    })
  }

  /** Closes every connection now; requests in flight or waiting fail. */
  destroy(): Promise<void> {
    this.#destroyed = true
    this.#closing = true
    const err = new UpstreamTransportError('UND_ERR_DESTROYED', 'The client is destroyed')
    for (const req of this.#queue.splice(0)) req.fail(err)
    for (const conn of [...this.#all]) conn.destroy(err)
    for (const done of this.#drained.splice(0)) done()
    return Promise.resolve()
  }
}

function sweep(pool: Http1Pool): void {
  pool.sweep()
}

class BufferingHandler implements Dispatcher.DispatchHandler {
  readonly #resolve: (answer: BufferedAnswer) => void
  readonly #reject: (err: Error) => void
  readonly #signal: AbortSignal | null
  #controller: Dispatcher.DispatchController | null
  #status: number
  #headers: Record<string, string | string[]>
  #chunks: Buffer[]
  #bytes: number
  readonly #onAbort: () => void

  constructor(resolve: (answer: BufferedAnswer) => void, reject: (err: Error) => void, signal: AbortSignal | null) {
    this.#resolve = resolve
    this.#reject = reject
    this.#signal = signal
    this.#controller = null
    this.#status = 0
    this.#headers = {}
    this.#chunks = []
    this.#bytes = 0
    this.#onAbort = () => this.#controller?.abort(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'))
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#signal === null) return
    if (this.#signal.aborted) this.#onAbort()
    else this.#signal.addEventListener('abort', this.#onAbort, { once: true })
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[]>): void {
    this.#status = statusCode
    this.#headers = headers
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#bytes += chunk.length
    if (this.#bytes > MAX_BUFFERED_BODY) controller.abort(new Error(`response body larger than ${MAX_BUFFERED_BODY} bytes`))
    else this.#chunks.push(chunk)
  }

  onResponseEnd(): void {
    this.#signal?.removeEventListener('abort', this.#onAbort)
    const body = Buffer.concat(this.#chunks)
    this.#resolve({
      statusCode: this.#status,
      headers: this.#headers,
      body: { text: async () => body.toString('utf8'), json: async () => JSON.parse(body.toString('utf8')) as unknown, dump: async () => undefined },
    })
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#reject(err)
  }
}
