/**
 * The proxied routes served straight from node:http, beside fastify. A plain proxied request
 * (POST to an exact endpoint path, a JSON body with a Content-Length within the body limit, no
 * Content-Encoding, one Host header) is read here and handed to the pipeline; fastify's routing,
 * hooks, body parser and reply object, which were a large share of the CPU and garbage per
 * request, stay out of its way. Anything else (query strings, chunked or compressed bodies, other
 * media types, errors in the request line or headers, every other route) goes to fastify as
 * before, so the edge cases keep one implementation.
 *
 * What the request sees is the same either way: the request id, CORS headers, open-request
 * accounting for the drain, and errors in the caller's shape (OpenAI, or Anthropic on its routes)
 * with the same status, code, headers, metrics and access-log line as fastify's error handler.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { GatewayError } from '../errors.ts'
import { gatewayErrorBody } from '../protocols/anthropic/errors.ts'
import type { Cors } from '../protocols/cors.ts'
import type { Logger } from '../telemetry/logger.ts'
import { REQUEST_ID_HEADER, requestId } from '../telemetry/request-id.ts'
import { ENDPOINTS, type Endpoint } from './endpoints.ts'
import { uploadEnded } from './client-limits.ts'
import { hostError } from './http-conformance.ts'
import { COUNT_TOKENS_PATH, MESSAGES_PATH, translateMessagesCall } from './messages.ts'
import { proxy, proxyParsed, type Exchange, type PipelineState } from './pipeline.ts'

// node:http through require, not an ESM import: building its ESM namespace loads Node's bundled
// undici (about 12 MB resident) for nothing (docs/benchmarks.md, "Idle memory").
const http = createRequire(import.meta.url)('node:http') as typeof import('node:http')

/** The gateway's live state as the lean handler needs it. */
export interface LeanState extends PipelineState {
  /** HTTP requests received and not yet answered (the drain waits for them). */
  openRequests: number
  readonly logger: Logger
}

export interface LeanOptions {
  readonly bodyLimit: number
  readonly cors: Cors
  /** Maps whatever a request raised to the registry error its client gets. */
  readonly toGatewayError: (error: unknown) => GatewayError
}

/** How one route hands a request to the pipeline. */
interface LeanRoute {
  /** The route label of metrics and the access log. */
  readonly name: string
  /** Errors in Anthropic's shape. */
  readonly anthropic: boolean
  readonly endpoint: Endpoint | null
  readonly countOnly: boolean
}

/** Node's own fast path for requests without a body: marks the stream read, ended and closed, with no events. */
type Closable = IncomingMessage & { _dumpAndCloseReadable?: () => void }

/**
 * node:http's request, whose body the lean handler takes straight from the HTTP parser: the
 * chunks the parser pushes go to the exchange, and when the body is complete the request is
 * marked read, ended and closed at once, as Node itself does for a GET. A request taken so emits
 * no 'data', 'end' or 'close' (nothing listens for them), and costs none of a stream's machinery
 * (flowing mode, a nextTick each to resume, end and destroy it, an event per chunk). Requests
 * fastify serves are left plain streams. The server is built with it (`IncomingMessage` of
 * `http.createServer`) only when this Node has the fast path (`leanRequestsSupported`).
 */
export class LeanIncomingMessage extends http.IncomingMessage {
  /** The exchange taking this request's body, until the body is complete; null: a plain stream. */
  lean: LeanExchange | null = null

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    const exchange = this.lean
    if (exchange === null) return super.push(chunk, encoding)
    if (chunk === null) {
      this.lean = null
      ;(this as Closable)._dumpAndCloseReadable!()
      uploadEnded(this)
      exchange.ended()
      return false
    }
    exchange.received(chunk as Buffer)
    return true
  }
}

export const leanRequestsSupported = typeof (http.IncomingMessage.prototype as Closable)._dumpAndCloseReadable === 'function'

export class LeanHandler {
  readonly state: LeanState
  readonly options: LeanOptions
  readonly #routes: Map<string, LeanRoute>
  /** One listener for every response: the request is answered once its response closes. */
  readonly #onResponseClose: () => void

  constructor(state: LeanState, options: LeanOptions) {
    this.state = state
    this.options = options
    this.#onResponseClose = () => {
      state.openRequests--
    }
    this.#routes = new Map<string, LeanRoute>(ENDPOINTS.map((endpoint) => [endpoint.path, { name: endpoint.name, anthropic: false, endpoint, countOnly: false }]))
    this.#routes.set(MESSAGES_PATH, { name: 'messages', anthropic: true, endpoint: null, countOnly: false })
    this.#routes.set(COUNT_TOKENS_PATH, { name: 'messages.count_tokens', anthropic: true, endpoint: null, countOnly: true })
  }

  /** Serves the request when it is a plain proxied POST; false leaves it to fastify, untouched. */
  take(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || !(req instanceof LeanIncomingMessage)) return false
    const route = this.#routes.get(req.url!)
    if (route === undefined) return false
    const headers = req.headers
    const length = headers['content-length']
    if (length === undefined || headers['transfer-encoding'] !== undefined) return false
    // Node's parser has already refused a Content-Length that is not a number.
    const bytes = Number(length)
    if (!(bytes > 0 && bytes <= this.options.bodyLimit)) return false
    const encoding = headers['content-encoding']
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') return false
    if (!isJson(headers['content-type'])) return false
    if (hostError(req) !== null) return false
    const exchange = new LeanExchange(this, route, req, res, bytes)
    this.state.openRequests++
    res.on('close', this.#onResponseClose)
    if (this.options.cors.enabled) this.options.cors.decorate(headers, res)
    req.lean = exchange
    return true
  }
}

/** `application/json`, with parameters or not: the type fastify's JSON parser would take. */
function isJson(type: string | undefined): boolean {
  if (type === undefined || !type.startsWith('application/json')) return false
  if (type.length === 16) return true
  const next = type.charCodeAt(16)
  return next === 0x3b || next === 0x20 || next === 0x09 // ';', ' ', tab
}

class LeanExchange implements Exchange {
  readonly handler: LeanHandler
  readonly route: LeanRoute
  readonly id: string
  readonly req: IncomingMessage
  readonly raw: ServerResponse
  readonly startedAt: number
  /** The announced Content-Length, which Node holds the body to. */
  readonly #length: number
  /** The body as it arrives: its first chunk, until a second one makes it a buffer of its own. */
  #body: Buffer | null
  #received: number
  #copied: boolean

  constructor(handler: LeanHandler, route: LeanRoute, req: IncomingMessage, res: ServerResponse, bytes: number) {
    this.handler = handler
    this.route = route
    this.id = requestId(req)
    this.req = req
    this.raw = res
    this.startedAt = performance.now()
    this.#length = bytes
    this.#body = null
    this.#received = 0
    this.#copied = false
  }

  get headers(): IncomingMessage['headers'] {
    return this.req.headers
  }

  /** The pipeline writes straight to `raw` already: nothing to take over from. */
  takeOver(): void {}

  received(chunk: Buffer): void {
    if (this.#body === null) {
      this.#body = chunk
      this.#received = chunk.length
      return
    }
    if (!this.#copied) {
      const whole = Buffer.allocUnsafe(this.#length)
      this.#body.copy(whole, 0, 0, this.#received)
      this.#body = whole
      this.#copied = true
    }
    this.#received += chunk.copy(this.#body, this.#received)
  }

  ended(): void {
    const res = this.raw
    // An answer already went out (a too-slow upload refused by the upload guard).
    if (res.headersSent || res.destroyed) return
    const body = this.#body === null ? undefined : this.#received === this.#body.length ? this.#body : this.#body.subarray(0, this.#received)
    this.#body = null
    const state = this.handler.state
    const route = this.route
    try {
      const pending =
        route.endpoint !== null
          ? proxy(state, route.endpoint, this, body)
          : proxyParsed(state, translateMessagesCall(state.snapshot, body, this.req.headers, res, route.countOnly), this)
      if (pending instanceof Promise) pending.then(undefined, (err: unknown) => this.failed(err))
    } catch (err) {
      this.failed(err)
    }
  }

  /** fastify's error handler, for requests it never saw: the same answer, counts and log line. */
  failed(error: unknown): void {
    const state = this.handler.state
    const err = this.handler.options.toGatewayError(error)
    const route = this.route.name
    if (err.status >= 500) state.logger.error({ err: error, requestId: this.id }, 'request failed')
    state.metrics.countRequest(route, 'none', 'none', err.status)
    state.accessLog?.refused(this.id, route, err.status, err.code, this.startedAt)
    const res = this.raw
    if (res.headersSent || res.destroyed) {
      res.destroy()
      return
    }
    const body = this.route.anthropic ? gatewayErrorBody(err) : err.body()
    res.setHeader('content-type', 'application/json; charset=utf-8')
    res.setHeader('content-length', Buffer.byteLength(body))
    if (err.retryAfter !== null) res.setHeader('retry-after', String(err.retryAfter))
    res.setHeader(REQUEST_ID_HEADER, this.id)
    res.writeHead(err.status)
    res.end(body)
  }
}
