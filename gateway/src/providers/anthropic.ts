/**
 * `kind: anthropic`: the native Messages API (`https://api.anthropic.com`, `x-api-key`,
 * `anthropic-version`). A Messages request from a client goes through untouched (the model name
 * rewritten only for an alias) and its answer comes back untouched; an OpenAI chat request is
 * translated to Messages and its answer translated back, event by event for streams. Other OpenAI
 * endpoints have no Messages equivalent and are refused.
 */
import { EventEmitter } from 'node:events'
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'
import { GatewayError } from '../errors.ts'
import { chatToMessagesRequest, messageToChat, MessagesToChatStream } from '../protocols/anthropic/from-chat.ts'
import { flatHeaders, headerValue, withoutHeaders, type ClientResponse } from '../protocols/client-response.ts'
import type { OutgoingRequest, Provider, ProviderCall } from './provider.ts'

export const ANTHROPIC_VERSION = '2023-06-01'

const MESSAGES_PATH = '/v1/messages'

export const anthropicProvider: Provider = Object.freeze({
  kind: 'anthropic' as const,
  headers: (apiKey: string | undefined) => (apiKey ? ['x-api-key', apiKey, 'anthropic-version', ANTHROPIC_VERSION] : ['anthropic-version', ANTHROPIC_VERSION]),
  prepare(call: ProviderCall): OutgoingRequest {
    const native = call.native
    if (native !== null && native.protocol === 'anthropic') {
      if (call.model === call.clientModel) return { path: native.path, body: native.body }
      const body = JSON.parse(native.body.toString('utf8')) as Record<string, unknown>
      return { path: native.path, body: Buffer.from(JSON.stringify({ ...body, model: call.model })) }
    }
    if (call.endpoint.name !== 'chat.completions') {
      throw new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', `${call.endpoint.name} on an anthropic upstream (it serves chat completions and Messages)`)
    }
    const chat = JSON.parse(call.body.toString('utf8')) as Record<string, unknown>
    return { path: MESSAGES_PATH, body: Buffer.from(JSON.stringify(chatToMessagesRequest(chat, call.model))) }
  },
  respond(res: ClientResponse, call: ProviderCall): ClientResponse | null {
    if (call.native !== null) {
      call.native.passthrough()
      return null
    }
    const chat = JSON.parse(call.body.toString('utf8')) as { stream?: unknown; stream_options?: { include_usage?: unknown } }
    return new ChatFromMessages(res, call.clientModel, chat.stream_options?.include_usage === true && call.usageInjected !== true)
  },
})

const LENGTH = new Set(['content-length', 'content-encoding', 'content-type'])

/**
 * Stands in for the client's response while an Anthropic upstream answers an OpenAI client:
 * Messages events become chat chunks as they arrive; a Message becomes a chat completion; an
 * Anthropic error becomes an OpenAI-shaped one with the same status.
 */
class ChatFromMessages extends EventEmitter implements ClientResponse {
  private readonly res: ClientResponse
  private readonly model: string
  private readonly includeUsage: boolean
  private stream: MessagesToChatStream | null
  private status: number
  private headers: string[]
  private chunks: Buffer[]

  constructor(res: ClientResponse, model: string, includeUsage: boolean) {
    super()
    this.res = res
    this.model = model
    this.includeUsage = includeUsage
    this.stream = null
    this.status = 0
    this.headers = []
    this.chunks = []
    res.on('close', () => this.emit('close'))
    res.on('drain', () => this.emit('drain'))
  }

  get destroyed(): boolean {
    return this.res.destroyed
  }

  get headersSent(): boolean {
    return this.res.headersSent
  }

  writeHead(status: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this {
    const flat = flatHeaders(headers)
    this.status = status
    if (status === 200 && (headerValue(flat, 'content-type') ?? '').startsWith('text/event-stream')) {
      this.stream = new MessagesToChatStream(this.model, Math.floor(Date.now() / 1000), this.includeUsage)
      this.res.writeHead(status, withoutHeaders(flat, LENGTH).concat('content-type', 'text/event-stream'))
    } else {
      this.headers = withoutHeaders(flat, LENGTH)
    }
    return this
  }

  write(chunk: Buffer | string): boolean {
    if (this.stream !== null) {
      const out = this.stream.push(chunk)
      return out === '' ? true : this.res.write(out)
    }
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    return true
  }

  end(chunk?: Buffer | string): this {
    if (this.stream !== null) {
      const out = (chunk !== undefined ? this.stream.push(chunk) : '') + this.stream.end()
      this.res.end(out)
      return this
    }
    if (chunk !== undefined) this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    const text = Buffer.concat(this.chunks).toString('utf8')
    this.chunks = []
    let parsed: Record<string, unknown> | null = null
    try {
      parsed = JSON.parse(text) as Record<string, unknown>
    } catch {
      parsed = null
    }
    let body: string
    if (this.status >= 200 && this.status < 300 && parsed !== null) {
      body = JSON.stringify(messageToChat(parsed, this.model, Math.floor(Date.now() / 1000)))
    } else {
      const e = parsed !== null && typeof parsed.error === 'object' && parsed.error !== null ? parsed.error as Record<string, unknown> : {}
      body = JSON.stringify({ error: { message: typeof e.message === 'string' ? e.message : text.slice(0, 1_000), type: typeof e.type === 'string' ? e.type : 'api_error', param: null, code: typeof e.type === 'string' ? e.type : null } })
    }
    this.res.writeHead(this.status, this.headers.concat('content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))))
    this.res.end(body)
    return this
  }

  destroy(err?: Error): this {
    this.res.destroy(err)
    return this
  }
}
