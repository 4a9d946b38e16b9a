/**
 * Which chat requests are single-turn safe for the semantic cache, and the partition they search.
 * Only the last user message is embedded; everything else that shapes the answer (model,
 * parameters, system prompt, every earlier turn, tools, the embedder) must match exactly, so it
 * goes into the partition key.
 */
import { canonicalBody, canonicalJson, digest } from '../canonical.ts'

const MESSAGES_ONLY = new Set(['messages'])

export interface SemanticInput {
  readonly text: string
  readonly partition: string
}

type Json = Record<string, unknown>

function textOf(content: unknown): string | null {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return null
  let out = ''
  for (const part of content) {
    // Images, audio or files cannot be compared through a text embedding.
    if (part === null || typeof part !== 'object' || (part as Json).type !== 'text') return null
    const t = (part as Json).text
    if (typeof t !== 'string') return null
    out += (out.length > 0 ? '\n' : '') + t
  }
  return out
}

/** Null when the request must not be answered semantically. */
export function semanticInput(
  scope: string,
  model: string,
  body: Json,
  embedderId: string,
  maxInputChars: number,
): SemanticInput | null {
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) return null
  for (const m of messages) {
    if (m === null || typeof m !== 'object') return null
    const role = (m as Json).role
    if (role === 'tool' || role === 'function') return null
    if ((m as Json).tool_calls !== undefined || (m as Json).function_call !== undefined) return null
  }
  const last = messages[messages.length - 1] as Json
  if (last.role !== 'user') return null
  const text = textOf(last.content)
  if (text === null) return null
  const trimmed = text.trim()
  if (trimmed.length === 0 || trimmed.length > maxInputChars) return null
  const partition = digest(
    scope,
    'chat.completions',
    embedderId,
    canonicalBody(body, model, MESSAGES_ONLY),
    canonicalJson(messages.slice(0, -1)),
    canonicalJson({ ...last, content: null }),
  )
  return { text: trimmed, partition }
}
