/**
 * The edge of an Anthropic Messages request: stands in for the client's ServerResponse and turns
 * the internal (OpenAI chat) answer written to it into the Anthropic one, in the same call:
 *
 * - a 200 event stream: event by event (ChatToMessagesStream), one write per upstream chunk, so
 *   tokens leave as they arrive and backpressure reaches the upstream as before;
 * - a 200 JSON body: held until complete (it must be parsed whole), then one Anthropic Message;
 * - an error (the gateway's own, or an upstream's passed through): Anthropic's error shape with
 *   the same status.
 *
 * A response that is already Anthropic (`passthrough`, from an Anthropic-native upstream) goes
 * out untouched.
 */
import { EventEmitter } from 'node:events'
import type { OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { GatewayError } from '../../errors.ts'
import { flatHeaders, headerValue, withoutHeaders, type ClientResponse } from '../client-response.ts'
import { fromOpenAIErrorBody, gatewayErrorBody } from './errors.ts'
import { chatToMessage } from './response.ts'
import { ChatToMessagesStream } from './stream.ts'

const MODE_NONE = 0
const MODE_STREAM = 1
const MODE_JSON = 2
const MODE_ERROR = 3
const MODE_PASS = 4

const LENGTH_HEADERS = new Set(['content-length', 'content-encoding'])

export type AnthropicAnswer = 'messages' | 'count_tokens'

export class AnthropicResponse extends EventEmitter implements ClientResponse {
  readonly raw: ServerResponse
  private readonly answer: AnthropicAnswer
  private readonly model: string
  private readonly stopSequences: readonly string[]
  private mode: number
  private status: number
  private headers: string[]
  private chunks: Buffer[]
  private stream: ChatToMessagesStream | null
  /** The next answer is already in Anthropic's protocol (an Anthropic-native upstream). */
  passthrough: boolean

  constructor(raw: ServerResponse, answer: AnthropicAnswer, model: string, stopSequences: readonly string[] = []) {
    super()
    this.raw = raw
    this.answer = answer
    this.model = model
    this.stopSequences = stopSequences
    this.mode = MODE_NONE
    this.status = 0
    this.headers = []
    this.chunks = []
    this.stream = null
    this.passthrough = false
    raw.on('close', () => this.emit('close'))
    raw.on('drain', () => this.emit('drain'))
  }

  get destroyed(): boolean {
    return this.raw.destroyed
  }

  get headersSent(): boolean {
    return this.raw.headersSent
  }

  writeHead(status: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this {
    const flat = flatHeaders(headers)
    this.status = status
    const type = headerValue(flat, 'content-type') ?? ''
    if (this.passthrough) {
      this.mode = MODE_PASS
      this.raw.writeHead(status, flat)
    } else if (status === 200 && type.startsWith('text/event-stream') && this.answer === 'messages') {
      this.mode = MODE_STREAM
      this.stream = new ChatToMessagesStream(this.model, this.stopSequences)
      this.raw.writeHead(status, withoutHeaders(flat, LENGTH_HEADERS))
    } else if (status >= 200 && status < 300) {
      this.mode = MODE_JSON
      this.headers = withoutHeaders(flat, LENGTH_HEADERS)
    } else {
      this.mode = MODE_ERROR
      this.headers = withoutHeaders(flat, LENGTH_HEADERS)
    }
    return this
  }

  write(chunk: Buffer | string): boolean {
    switch (this.mode) {
      case MODE_STREAM: {
        const out = this.stream!.push(chunk)
        return out === '' || this.raw.destroyed ? true : this.raw.write(out)
      }
      case MODE_PASS:
        return this.raw.write(chunk)
      default:
        this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
        return true
    }
  }

  end(chunk?: Buffer | string): this {
    if (this.raw.destroyed) return this
    switch (this.mode) {
      case MODE_STREAM: {
        const stream = this.stream!
        const out = (chunk !== undefined ? stream.push(chunk) : '') + stream.end()
        this.raw.end(out)
        break
      }
      case MODE_PASS:
        this.raw.end(chunk)
        break
      case MODE_JSON:
      case MODE_ERROR: {
        if (chunk !== undefined) this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
        const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
        this.chunks = []
        if (this.mode === MODE_ERROR) this.send(this.status, this.headers, fromOpenAIErrorBody(this.status, body))
        else this.sendTranslated(body)
        break
      }
      default:
        this.raw.end(chunk)
    }
    return this
  }

  /**
   * The request path gives up on a response. If nothing reached the client yet (a JSON answer
   * still being gathered), it gets a proper Anthropic error instead of a cut connection.
   */
  destroy(err?: Error): this {
    if (!this.raw.headersSent && !this.raw.destroyed && err instanceof GatewayError) {
      this.chunks = []
      this.send(err.status, this.headers, gatewayErrorBody(err))
    } else {
      this.raw.destroy(err)
    }
    return this
  }

  private sendTranslated(body: Buffer): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      parsed = null
    }
    if (typeof parsed !== 'object' || parsed === null) {
      const err = new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', 'a body that is not a JSON object')
      this.send(err.status, this.headers, gatewayErrorBody(err))
      return
    }
    const json = parsed as Record<string, unknown>
    const out = this.answer === 'count_tokens'
      ? { input_tokens: typeof json.count === 'number' ? json.count : typeof json.input_tokens === 'number' ? json.input_tokens : 0 }
      : chatToMessage(json, this.model, this.stopSequences)
    this.send(this.status, this.headers, JSON.stringify(out))
  }

  private send(status: number, headers: string[], body: string): void {
    const out = withoutHeaders(headers, CONTENT_TYPE)
    out.push('content-type', 'application/json', 'content-length', String(Buffer.byteLength(body)))
    this.raw.writeHead(status, out)
    this.raw.end(body)
  }
}

const CONTENT_TYPE = new Set(['content-type'])
