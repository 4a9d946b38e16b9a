/**
 * `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API at the
 * edge. The request is authenticated (`x-api-key`, or `Authorization: Bearer`), translated into
 * the internal OpenAI chat shape, and handed to the same pipeline as a chat completion (limits,
 * cache, routing, failover, metrics); the answer is translated back by an AnthropicResponse
 * standing in for the client's response. `anthropic-version` and `anthropic-beta` are accepted
 * whatever their value: the translation speaks the current version.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { GatewayError } from '../errors.ts'
import type { Endpoint } from './endpoints.ts'
import type { PreparedCall } from './pipeline.ts'
import { ObjectBody, parseObject } from './request-body.ts'
import type { RuntimeSnapshot } from '../runtime/snapshot.ts'
import { AnthropicResponse } from '../protocols/anthropic/client-response.ts'
import { messagesToChat } from '../protocols/anthropic/request.ts'

/** Anthropic's routes, answered in Anthropic's shape, errors included. */
export const MESSAGES_PATH = '/v1/messages'
export const COUNT_TOKENS_PATH = '/v1/messages/count_tokens'

/** Forwarded as a chat completion; counted under its own route name. */
export const MESSAGES_ENDPOINT: Endpoint = Object.freeze({ name: 'messages', path: '/v1/chat/completions', streams: true })
/** Token counting asks the upstream's tokenizer (vLLM's `POST /tokenize`). */
export const COUNT_TOKENS_ENDPOINT: Endpoint = Object.freeze({ name: 'messages.count_tokens', path: '/tokenize', streams: false })

export function isAnthropicRoute(url: string | undefined): boolean {
  return url !== undefined && url.startsWith(MESSAGES_PATH) && (url.length === MESSAGES_PATH.length || url.charCodeAt(MESSAGES_PATH.length) === 47 || url.charCodeAt(MESSAGES_PATH.length) === 63)
}

/** A Messages request translated for the pipeline: the chat shape, and the original for native upstreams. */
export function translateMessagesCall(snapshot: RuntimeSnapshot, raw: Buffer | undefined, headers: IncomingHttpHeaders, clientRes: ServerResponse, countOnly: boolean): PreparedCall {
  if (raw === undefined || raw.length === 0) throw new GatewayError('GW_ERR_INVALID_JSON', 'the body is empty')
  // The authenticator takes `Authorization: Bearer` or Anthropic's `x-api-key`.
  const principal = snapshot.auth.authenticate(headers)
  // Translation reads the whole request: parsed at once, never scanned first.
  const client = parseObject(raw)
  const t = messagesToChat(client.json, countOnly)
  let internal = t.chat
  if (countOnly) {
    // vLLM's tokenizer endpoint takes chat messages (and tools) and counts the templated prompt.
    internal = { model: t.model, messages: t.chat.messages, add_generation_prompt: true }
    if (t.chat.tools !== undefined) internal.tools = t.chat.tools
  }
  const res = new AnthropicResponse(clientRes, countOnly ? 'count_tokens' : 'messages', t.model, t.stopSequences)
  return {
    endpoint: countOnly ? COUNT_TOKENS_ENDPOINT : MESSAGES_ENDPOINT,
    principal,
    parsed: new ObjectBody(internal, t.model, t.stream),
    body: Buffer.from(JSON.stringify(internal)),
    res,
    // Cached as the chat completion it became; token counts are not cached.
    cacheAs: countOnly ? null : 'chat.completions',
    native: { protocol: 'anthropic', path: countOnly ? COUNT_TOKENS_PATH : MESSAGES_PATH, body: raw, passthrough: () => (res.passthrough = true) },
  }
}
