/**
 * The shape every upstream kind that does not speak OpenAI shares on the way back: a stand-in for
 * the client's response that turns the upstream's stream into chat chunks as they arrive, and
 * its buffered answer (or error) into a chat completion (or an OpenAI-shaped error). Subclasses
 * say how: which responses are streams, how a chunk translates, how a whole body does.
 */
import { EventEmitter } from 'node:events'
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'
import { flatHeaders, withoutHeaders, type ClientResponse } from '../protocols/client-response.ts'

/** Framing headers of the upstream's answer: the translation has its own. */
const LENGTH = new Set(['content-length', 'content-encoding', 'content-type'])

/** A stream translator: upstream bytes in, chat SSE text out ('' when nothing is complete yet). */
export interface ChatStreamTranslation {
  push(chunk: Buffer | string): string
  /** What closes the stream when the upstream's body ends. */
  end(): string
}

export abstract class ChatTranslatingResponse extends EventEmitter implements ClientResponse {
  protected readonly res: ClientResponse
  protected readonly model: string
  protected readonly includeUsage: boolean
  #stream: ChatStreamTranslation | null = null
  #status = 0
  #headers: string[] = []
  #chunks: Buffer[] = []

  constructor(res: ClientResponse, model: string, includeUsage: boolean) {
    super()
    this.res = res
    this.model = model
    this.includeUsage = includeUsage
    res.on('close', () => this.emit('close'))
    res.on('drain', () => this.emit('drain'))
  }

  /** The stream translator for a response with these headers, or null to buffer and translate it whole. */
  protected abstract openStream(status: number, flat: string[]): ChatStreamTranslation | null
  /** The client's status and body for the buffered upstream answer `text`. */
  protected abstract translateBody(status: number, text: string): { readonly status: number; readonly body: string }

  get destroyed(): boolean {
    return this.res.destroyed
  }

  get headersSent(): boolean {
    return this.res.headersSent
  }

  writeHead(status: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this {
    const flat = flatHeaders(headers)
    this.#status = status
    this.#stream = this.openStream(status, flat)
    if (this.#stream !== null) this.res.writeHead(status, withoutHeaders(flat, LENGTH).concat('content-type', 'text/event-stream'))
    else this.#headers = withoutHeaders(flat, LENGTH)
    return this
  }

  write(chunk: Buffer | string): boolean {
    if (this.#stream !== null) {
      const out = this.#stream.push(chunk)
      return out === '' ? true : this.res.write(out)
    }
    this.#chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    return true
  }

  end(chunk?: Buffer | string): this {
    if (this.#stream !== null) {
      this.res.end((chunk !== undefined ? this.#stream.push(chunk) : '') + this.#stream.end())
      return this
    }
    if (chunk !== undefined) this.#chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    const text = Buffer.concat(this.#chunks).toString('utf8')
    this.#chunks = []
    const { status, body } = this.translateBody(this.#status, text)
    this.res.writeHead(status, this.#headers.concat('content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))))
    this.res.end(body)
    return this
  }

  destroy(err?: Error): this {
    this.res.destroy(err)
    return this
  }
}
