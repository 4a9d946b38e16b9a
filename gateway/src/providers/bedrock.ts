/**
 * `kind: bedrock`: Amazon Bedrock's Converse API (`https://bedrock-runtime.REGION.amazonaws.com`).
 * A chat request (and a Messages request, through its chat shape) goes to
 * `/model/{modelId}/converse`, or `/converse-stream` for a stream, translated to Converse and
 * signed with SigV4 (aws4, synchronously, with credentials from the AWS provider chain held in
 * aws-credentials.ts); with `apiKeyEnv` a Bedrock API key is sent as a Bearer token instead. The
 * answer, JSON or an AWS event stream, is translated back to the chat completion, event by event.
 */
import aws4 from 'aws4'
import { GatewayError } from '../errors.ts'
import { chatErrorBody, chatToConverse, ConverseStreamToChat, converseToChat } from '../protocols/bedrock/converse.ts'
import { EVENT_STREAM_CONTENT_TYPE, EventStreamReader } from '../protocols/bedrock/event-stream.ts'
import { headerValue, type ClientResponse } from '../protocols/client-response.ts'
import { ChatTranslatingResponse, type ChatStreamTranslation } from './chat-translation.ts'
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

/**
 * Stands in for the client's response while Bedrock answers: ConverseStream's binary events
 * become chat chunks as they arrive; a Converse answer becomes a chat completion; a Bedrock error
 * (`{"message"}` with `x-amzn-errortype`) becomes an OpenAI-shaped one with the same status.
 */
class ChatFromConverse extends ChatTranslatingResponse {
  #requestId: string | null = null
  #errorType: string | null = null

  protected openStream(status: number, flat: string[]): ChatStreamTranslation | null {
    this.#requestId = headerValue(flat, 'x-amzn-requestid')
    this.#errorType = headerValue(flat, 'x-amzn-errortype')
    if (status !== 200 || !(headerValue(flat, 'content-type') ?? '').startsWith(EVENT_STREAM_CONTENT_TYPE)) return null
    const reader = new EventStreamReader()
    const stream = new ConverseStreamToChat(this.model, Math.floor(Date.now() / 1000), this.includeUsage, this.#requestId)
    return {
      push(chunk: Buffer | string): string {
        if (stream.done) return ''
        try {
          return stream.push(reader.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk))
        } catch (err) {
          return stream.broken((err as Error).message)
        }
      },
      end: () => stream.end(),
    }
  }

  protected translateBody(status: number, text: string): { status: number; body: string } {
    if (status < 200 || status >= 300) return { status, body: chatErrorBody(status, this.#errorType, text) }
    try {
      return { status, body: JSON.stringify(converseToChat(JSON.parse(text) as Record<string, unknown>, this.model, Math.floor(Date.now() / 1000), this.#requestId)) }
    } catch {
      return { status: 502, body: new GatewayError('GW_ERR_UPSTREAM_BAD_RESPONSE', 'a Converse answer that is not JSON').body() }
    }
  }
}
