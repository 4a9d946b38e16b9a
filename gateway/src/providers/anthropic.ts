/**
 * `kind: anthropic`: the native Messages API (`https://api.anthropic.com`, `x-api-key`,
 * `anthropic-version`). A Messages request from a client goes through untouched (the model name
 * rewritten only for an alias) and its answer comes back untouched; an OpenAI chat request is
 * translated to Messages and its answer translated back, event by event for streams. Other OpenAI
 * endpoints have no Messages equivalent and are refused.
 */
import { GatewayError } from '../errors.ts'
import { chatToMessagesRequest, messageToChat, MessagesToChatStream } from '../protocols/anthropic/from-chat.ts'
import { headerValue, type ClientResponse } from '../protocols/client-response.ts'
import { ChatTranslatingResponse, type ChatStreamTranslation } from './chat-translation.ts'
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

/**
 * Stands in for the client's response while an Anthropic upstream answers an OpenAI client:
 * Messages events become chat chunks as they arrive; a Message becomes a chat completion; an
 * Anthropic error becomes an OpenAI-shaped one with the same status.
 */
class ChatFromMessages extends ChatTranslatingResponse {
  protected openStream(status: number, flat: string[]): ChatStreamTranslation | null {
    if (status !== 200 || !(headerValue(flat, 'content-type') ?? '').startsWith('text/event-stream')) return null
    return new MessagesToChatStream(this.model, Math.floor(Date.now() / 1000), this.includeUsage)
  }

  protected translateBody(status: number, text: string): { status: number; body: string } {
    let parsed: Record<string, unknown> | null = null
    try {
      parsed = JSON.parse(text) as Record<string, unknown>
    } catch {
      parsed = null
    }
    if (status >= 200 && status < 300 && parsed !== null) return { status, body: JSON.stringify(messageToChat(parsed, this.model, Math.floor(Date.now() / 1000))) }
    const e = parsed !== null && typeof parsed.error === 'object' && parsed.error !== null ? parsed.error as Record<string, unknown> : {}
    return { status, body: JSON.stringify({ error: { message: typeof e.message === 'string' ? e.message : text.slice(0, 1_000), type: typeof e.type === 'string' ? e.type : 'api_error', param: null, code: typeof e.type === 'string' ? e.type : null } }) }
  }
}
