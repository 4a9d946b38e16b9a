/**
 * Hosted providers' wire formats, so tests of the gateway's provider adapters run offline:
 *
 * - Azure OpenAI: `/openai/deployments/{deployment}/chat/completions?api-version=...` (and
 *   completions, embeddings) answer as the OpenAI paths do;
 * - Gemini's OpenAI-compatible endpoint: `/v1beta/openai/chat/completions` (and embeddings, models);
 * - Anthropic Messages: `POST /v1/messages` and `/v1/messages/count_tokens`, native answers and
 *   event streams (built from the same deterministic completion as chat, translated with the
 *   gateway's own pure translator, so the text matches what chat would say).
 */
import { chatToMessage } from '../protocols/anthropic/response.ts'
import { messagesToChat } from '../protocols/anthropic/request.ts'
import { ChatToMessagesStream } from '../protocols/anthropic/stream.ts'
import { anthropicErrorBody, fromOpenAIErrorBody } from '../protocols/anthropic/errors.ts'
import { chatCompletion } from './chat.ts'
import { chatWithTools, tokenize } from './chat-tools.ts'
import { type GenConfig, type GenRequest, type Reply, json } from './reply.ts'

const AZURE = /^\/openai\/deployments\/[^/]+(\/chat\/completions|\/completions|\/embeddings)$/
const GEMINI_PREFIX = '/v1beta/openai/'

/** The OpenAI path a provider-specific path stands for, or the path itself. */
export function openAIPath(path: string): string {
  if (path.startsWith('/openai/')) {
    const m = AZURE.exec(path)
    if (m !== null) return '/v1' + m[1]
  } else if (path.startsWith(GEMINI_PREFIX)) {
    return '/v1/' + path.slice(GEMINI_PREFIX.length)
  }
  return path
}

export function isMessagesPath(path: string): boolean {
  return path === '/v1/messages' || path === '/v1/messages/count_tokens'
}

/** An OpenAI-shaped error body for a Messages client, for the simulator's status faults. */
export function anthropicFault(status: number, message: string): string {
  return anthropicErrorBody(status, message, null)
}

export function messages(body: Record<string, unknown>, cfg: GenConfig, req: GenRequest, countOnly: boolean): Reply {
  let t
  try {
    t = messagesToChat(body, countOnly)
  } catch (err) {
    return json(400, anthropicErrorBody(400, (err as Error).message, null))
  }
  if (countOnly) {
    const counted = tokenize({ model: t.model, messages: t.chat.messages })
    if (counted.kind !== 'json' || counted.status !== 200) return counted
    const count = (JSON.parse(String(counted.body)) as { count: number }).count
    return json(200, '{"input_tokens":' + count + '}')
  }
  const chat = chatWithTools(t.chat, cfg, req) ?? chatCompletion(t.chat, cfg, req)
  if (chat.kind === 'json') {
    if (chat.status !== 200) return json(chat.status, fromOpenAIErrorBody(chat.status, String(chat.body)))
    return json(200, JSON.stringify(chatToMessage(JSON.parse(String(chat.body)) as Record<string, unknown>, t.model, t.stopSequences)))
  }
  // Same events and pacing, each translated on its own.
  const stream = new ChatToMessagesStream(t.model, t.stopSequences)
  const events: string[] = []
  const pauses: number[] = []
  for (let i = 0; i < chat.events.length; i++) {
    const out = stream.push(chat.events[i]!)
    if (out === '') continue
    events.push(out)
    pauses.push(chat.pauses[i]!)
  }
  const tail = stream.end()
  if (tail !== '') {
    events.push(tail)
    pauses.push(0)
  }
  return {
    kind: 'stream',
    events,
    pauses: Uint8Array.from(pauses),
    errorEvent: 'event: error\ndata: ' + anthropicErrorBody(529, 'Overloaded', null) + '\n\n',
  }
}
