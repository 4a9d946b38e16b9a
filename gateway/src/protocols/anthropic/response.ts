/**
 * OpenAI chat completion (JSON) -> Anthropic Message, and the pieces the stream translator shares:
 * stop reasons, usage and message ids.
 */
type Json = Record<string, unknown>

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal' | 'pause_turn'

export interface AnthropicUsage {
  input_tokens: number
  output_tokens: number
  cache_read_input_tokens?: number
}

/** `chatcmpl-abc` -> `msg_abc`; the SDKs treat ids as opaque, the prefix keeps them recognisable. */
export function messageId(chatId: unknown): string {
  if (typeof chatId !== 'string' || chatId === '') return 'msg_velox'
  return 'msg_' + (chatId.startsWith('chatcmpl-') ? chatId.slice(9) : chatId)
}

/**
 * OpenAI `finish_reason` -> Anthropic `stop_reason`. vLLM reports the matched stop string in the
 * choice's `stop_reason`, which tells a stop sequence from the model's own end of turn.
 */
export function stopReason(finish: unknown, matched: unknown, stopSequences: readonly string[]): { reason: StopReason; sequence: string | null } {
  switch (finish) {
    case 'length':
      return { reason: 'max_tokens', sequence: null }
    case 'tool_calls':
    case 'function_call':
      return { reason: 'tool_use', sequence: null }
    case 'content_filter':
      return { reason: 'refusal', sequence: null }
  }
  if (typeof matched === 'string' && stopSequences.includes(matched)) return { reason: 'stop_sequence', sequence: matched }
  return { reason: 'end_turn', sequence: null }
}

/**
 * OpenAI usage -> Anthropic usage. Anthropic's `input_tokens` excludes tokens read from the prompt
 * cache, which it reports apart; OpenAI counts them inside `prompt_tokens`.
 */
export function usage(u: unknown): AnthropicUsage {
  if (typeof u !== 'object' || u === null) return { input_tokens: 0, output_tokens: 0 }
  const o = u as Json
  const prompt = typeof o.prompt_tokens === 'number' ? o.prompt_tokens : 0
  const completion = typeof o.completion_tokens === 'number' ? o.completion_tokens : 0
  const details = o.prompt_tokens_details as Json | null | undefined
  const cached = details !== null && typeof details === 'object' && typeof details.cached_tokens === 'number' ? details.cached_tokens : null
  if (cached === null) return { input_tokens: prompt, output_tokens: completion }
  return { input_tokens: Math.max(0, prompt - cached), output_tokens: completion, cache_read_input_tokens: cached }
}

/** The reasoning text of a message or delta: `reasoning_content` (vLLM <= 0.9, DeepSeek) or `reasoning`. */
export function reasoningOf(m: Json): string | null {
  const r = m.reasoning_content ?? m.reasoning
  return typeof r === 'string' && r !== '' ? r : null
}

export function parseArguments(args: unknown): Json {
  if (typeof args !== 'string' || args.trim() === '') return {}
  try {
    const v: unknown = JSON.parse(args)
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Json : { value: v }
  } catch {
    // A model that wrote broken JSON: keep what it wrote rather than lose it.
    return { arguments: args }
  }
}

/** A complete chat completion as an Anthropic Message; `model` is the name the client asked for. */
export function chatToMessage(chat: Json, model: string, stopSequences: readonly string[]): Json {
  const choices = Array.isArray(chat.choices) ? chat.choices as Json[] : []
  const choice = choices[0] ?? {}
  const message = (typeof choice.message === 'object' && choice.message !== null ? choice.message : {}) as Json
  const content: Json[] = []
  const reasoning = reasoningOf(message)
  if (reasoning !== null) content.push({ type: 'thinking', thinking: reasoning, signature: '' })
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content })
  if (Array.isArray(message.tool_calls)) {
    for (const tc of message.tool_calls as Json[]) {
      const fn = (tc.function ?? {}) as Json
      content.push({ type: 'tool_use', id: typeof tc.id === 'string' ? tc.id : 'toolu_velox', name: fn.name, input: parseArguments(fn.arguments) })
    }
  }
  const stop = stopReason(choice.finish_reason, choice.stop_reason, stopSequences)
  return {
    id: messageId(chat.id),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stop.reason,
    stop_sequence: stop.sequence,
    usage: usage(chat.usage),
  }
}
