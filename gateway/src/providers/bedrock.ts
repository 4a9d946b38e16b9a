/**
 * `kind: bedrock`: Amazon Bedrock's Converse API (`https://bedrock-runtime.REGION.amazonaws.com`).
 * A chat request (and a Messages request, through its chat shape) goes to
 * `/model/{modelId}/converse`, or `/converse-stream` for a stream, translated to Converse and
 * signed with SigV4 (aws4, synchronously, with credentials from the AWS provider chain held in
 * aws-credentials.ts); with `apiKeyEnv` a Bedrock API key is sent as a Bearer token instead. The
 * answer, JSON or an AWS event stream, is translated back to the chat completion, event by event.
 */
import { EventEmitter } from 'node:events'
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'
import aws4 from 'aws4'
import { GatewayError } from '../errors.ts'
import { chatErrorBody, chatToConverse, ConverseStreamToChat, converseToChat } from '../protocols/bedrock/converse.ts'
import { EVENT_STREAM_CONTENT_TYPE, EventStreamReader } from '../protocols/bedrock/event-stream.ts'
import { flatHeaders, headerValue, withoutHeaders, type ClientResponse } from '../protocols/client-response.ts'
import type { CachedCredentials } from './aws-credentials.ts'
import type { OutgoingRequest, Provider, ProviderCall } from './provider.ts'

export const BEDROCK_SERVICE = 'bedrock'

/** `bedrock-runtime.us-east-1.amazonaws.com` (and `-fips`) -> `us-east-1`. */
export function regionOfHost(host: string): string | null {
  const m = /^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$/.exec(host)
  return m === null ? null : m[1]!
}

export interface BedrockSettings {
  readonly region: string
  /** The Host the requests carry (`host[:port]` of the upstream URL): it is signed. */
  readonly host: string
  /** The upstream URL's path prefix, part of the signed path. */
  readonly basePath: string
  /** Credentials to sign with; null when a Bedrock API key (Bearer) is used instead. */
  readonly credentials: CachedCredentials | null
}

export function bedrockProvider(settings: BedrockSettings): Provider {
  const { region, host, basePath, credentials } = settings
  // Paths per model, built on first use and kept.
  const paths = new Map<string, string>()
  const pathOf = (model: string, stream: boolean): string => {
    const key = (stream ? 's\u0000' : 'j\u0000') + model
    let path = paths.get(key)
    if (path === undefined) {
      path = `/model/${encodeURIComponent(model)}/${stream ? 'converse-stream' : 'converse'}`
      if (paths.size < 1024) paths.set(key, path)
    }
    return path
  }
  return Object.freeze({
    kind: 'bedrock' as const,
    headers: (apiKey: string | undefined) => (apiKey ? ['authorization', `Bearer ${apiKey}`] : []),
    ready: () => credentials?.ready() ?? Promise.resolve(),
    prepare(call: ProviderCall): OutgoingRequest {
      const name = call.endpoint.name
      if (name !== 'chat.completions' && name !== 'messages') {
        throw new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', `${name} on a bedrock upstream (it serves chat completions and Messages)`)
      }
      const { body, stream } = chatToConverse(JSON.parse(call.body.toString('utf8')) as Record<string, unknown>)
      const path = pathOf(call.model, stream)
      const bytes = Buffer.from(JSON.stringify(body))
      if (credentials === null) return { path, body: bytes, headers: null }
      return { path, body: bytes, headers: sign(credentials, region, host, basePath + path, bytes) }
    },
    respond(res: ClientResponse, call: ProviderCall): ClientResponse {
      const chat = JSON.parse(call.body.toString('utf8')) as { stream_options?: { include_usage?: unknown } }
      return new ChatFromConverse(res, call.clientModel, chat.stream_options?.include_usage === true && call.usageInjected !== true)
    },
  })
}

/**
 * SigV4 headers for one POST: `x-amz-date`, `authorization` and, for temporary credentials,
 * `x-amz-security-token`. Signed: content-length, content-type, host, x-amz-date (and the token).
 */
export function sign(credentials: CachedCredentials, region: string, host: string, path: string, body: Buffer): string[] {
  const c = credentials.current()
  const headers = aws4.sign({ host, path, method: 'POST', service: BEDROCK_SERVICE, region, body, headers: { 'content-type': 'application/json' } }, c).headers as Record<string, string>
  const out = ['x-amz-date', headers['X-Amz-Date']!, 'authorization', headers.Authorization!]
  if (headers['X-Amz-Security-Token'] !== undefined) out.push('x-amz-security-token', headers['X-Amz-Security-Token'])
  return out
}

const LENGTH = new Set(['content-length', 'content-encoding', 'content-type'])

/**
 * Stands in for the client's response while Bedrock answers: ConverseStream's binary events
 * become chat chunks as they arrive; a Converse answer becomes a chat completion; a Bedrock error
 * (`{"message"}` with `x-amzn-errortype`) becomes an OpenAI-shaped one with the same status.
 */
class ChatFromConverse extends EventEmitter implements ClientResponse {
  private readonly res: ClientResponse
  private readonly model: string
  private readonly includeUsage: boolean
  private reader: EventStreamReader | null
  private stream: ConverseStreamToChat | null
  private status: number
  private headers: string[]
  private requestId: string | null
  private errorType: string | null
  private chunks: Buffer[]

  constructor(res: ClientResponse, model: string, includeUsage: boolean) {
    super()
    this.res = res
    this.model = model
    this.includeUsage = includeUsage
    this.reader = null
    this.stream = null
    this.status = 0
    this.headers = []
    this.requestId = null
    this.errorType = null
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
    this.requestId = headerValue(flat, 'x-amzn-requestid')
    this.errorType = headerValue(flat, 'x-amzn-errortype')
    if (status === 200 && (headerValue(flat, 'content-type') ?? '').startsWith(EVENT_STREAM_CONTENT_TYPE)) {
      this.reader = new EventStreamReader()
      this.stream = new ConverseStreamToChat(this.model, Math.floor(Date.now() / 1000), this.includeUsage, this.requestId)
      this.res.writeHead(status, withoutHeaders(flat, LENGTH).concat('content-type', 'text/event-stream'))
    } else {
      this.headers = withoutHeaders(flat, LENGTH)
    }
    return this
  }

  private translate(chunk: Buffer | string): string {
    const stream = this.stream!
    if (stream.done) return ''
    try {
      return stream.push(this.reader!.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk))
    } catch (err) {
      return stream.broken((err as Error).message)
    }
  }

  write(chunk: Buffer | string): boolean {
    if (this.stream !== null) {
      const out = this.translate(chunk)
      return out === '' ? true : this.res.write(out)
    }
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    return true
  }

  end(chunk?: Buffer | string): this {
    if (this.stream !== null) {
      const out = (chunk !== undefined ? this.translate(chunk) : '') + this.stream.end()
      this.res.end(out)
      return this
    }
    if (chunk !== undefined) this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    const text = Buffer.concat(this.chunks).toString('utf8')
    this.chunks = []
    let body: string | null = null
    if (this.status >= 200 && this.status < 300) {
      try {
        body = JSON.stringify(converseToChat(JSON.parse(text) as Record<string, unknown>, this.model, Math.floor(Date.now() / 1000), this.requestId))
      } catch {
        body = null
      }
    }
    let status = this.status
    if (body === null && status >= 200 && status < 300) {
      status = 502
      body = new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', 'a Converse answer that is not JSON').body()
    } else if (body === null) {
      body = chatErrorBody(status, this.errorType, text)
    }
    this.res.writeHead(status, this.headers.concat('content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))))
    this.res.end(body)
    return this
  }

  destroy(err?: Error): this {
    this.res.destroy(err)
    return this
  }
}
