/**
 * Anthropic Messages request -> OpenAI chat completions request (the gateway's internal shape).
 *
 * Pure: a JSON object in, a JSON object out, or a GatewayError naming the field that cannot be
 * translated. What an OpenAI-compatible server has no equivalent for is refused with a clear
 * message rather than dropped silently (server tools, PDF documents); what only steers Anthropic's
 * own service (`service_tier`, `cache_control`, `container`) is ignored.
 */
import { GatewayError } from '../../errors.ts'

type Json = Record<string, unknown>

export interface TranslatedRequest {
  /** The OpenAI chat completions body. */
  readonly chat: Json
  readonly model: string
  readonly stream: boolean
  /** The client's stop sequences, to tell a `stop_sequence` stop from an `end_turn`. */
  readonly stopSequences: readonly string[]
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('GW_ERR_INVALID_BODY', `${param}: ${message}`, { param })
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Translates a `POST /v1/messages` body; `countOnly` (count_tokens) does not require `max_tokens`. */
export function messagesToChat(body: Json, countOnly = false): TranslatedRequest {
  const model = body.model
  if (typeof model !== 'string' || model === '') throw new GatewayError('GW_ERR_MODEL_REQUIRED', undefined, { param: 'model' })
  const stream = body.stream
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') throw invalid('must be a boolean', 'stream')
  const maxTokens = body.max_tokens
  if (!countOnly && (!Number.isSafeInteger(maxTokens) || (maxTokens as number) < 1)) throw invalid('a positive integer is required', 'max_tokens')
  const rawMessages = body.messages
  if (!Array.isArray(rawMessages) || rawMessages.length === 0) throw invalid('must be a non-empty array', 'messages')

  const messages: Json[] = []
  const system = systemText(body.system)
  if (system !== null) messages.push({ role: 'system', content: system })
  for (let i = 0; i < rawMessages.length; i++) translateMessage(rawMessages[i], i, messages)

  const chat: Json = { model, messages }
  if (!countOnly) chat.max_tokens = maxTokens
  copyNumber(body, 'temperature', chat, 'temperature')
  copyNumber(body, 'top_p', chat, 'top_p')
  // vLLM, SGLang and TGI take top_k as an extra sampling parameter.
  copyNumber(body, 'top_k', chat, 'top_k')

  let stopSequences: string[] = []
  if (body.stop_sequences !== undefined && body.stop_sequences !== null) {
    const stops = body.stop_sequences
    if (!Array.isArray(stops) || stops.some((s) => typeof s !== 'string')) throw invalid('must be an array of strings', 'stop_sequences')
    stopSequences = stops as string[]
    if (stopSequences.length > 0) chat.stop = stopSequences
  }
  const metadata = body.metadata
  if (isObject(metadata) && typeof metadata.user_id === 'string' && metadata.user_id !== '') chat.user = metadata.user_id

  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) throw invalid('must be an array', 'tools')
    if (body.tools.length > 0) chat.tools = body.tools.map(translateTool)
  }
  if (body.tool_choice !== undefined && body.tool_choice !== null) translateToolChoice(body.tool_choice, chat)
  translateThinking(body.thinking, chat)

  if (stream === true && !countOnly) {
    chat.stream = true
    // The usage chunk feeds message_delta's usage (and the token metrics).
    chat.stream_options = { include_usage: true }
  }
  return { chat, model, stream: stream === true, stopSequences }
}

function copyNumber(from: Json, key: string, to: Json, as: string): void {
  const v = from[key]
  if (v === undefined || v === null) return
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid('must be a number', key)
  to[as] = v
}

function systemText(system: unknown): string | null {
  if (system === undefined || system === null) return null
  if (typeof system === 'string') return system === '' ? null : system
  if (!Array.isArray(system)) throw invalid('must be a string or an array of text blocks', 'system')
  const parts: string[] = []
  for (let i = 0; i < system.length; i++) {
    const block: unknown = system[i]
    if (!isObject(block) || block.type !== 'text' || typeof block.text !== 'string') throw invalid('must be a text block', `system[${i}]`)
    parts.push(block.text)
  }
  return parts.length === 0 ? null : parts.join('\n')
}

function translateMessage(m: unknown, i: number, out: Json[]): void {
  const at = `messages[${i}]`
  if (!isObject(m)) throw invalid('must be an object', at)
  const role = m.role
  if (role !== 'user' && role !== 'assistant') throw invalid('role must be "user" or "assistant"', `${at}.role`)
  const content = m.content
  if (typeof content === 'string') {
    out.push({ role, content })
    return
  }
  if (!Array.isArray(content)) throw invalid('must be a string or an array of content blocks', `${at}.content`)
  if (role === 'assistant') out.push(assistantMessage(content, at))
  else userMessages(content, at, out)
}

function assistantMessage(blocks: unknown[], at: string): Json {
  let text = ''
  let reasoning = ''
  const toolCalls: Json[] = []
  for (let j = 0; j < blocks.length; j++) {
    const b: unknown = blocks[j]
    const p = `${at}.content[${j}]`
    if (!isObject(b)) throw invalid('must be a content block', p)
    switch (b.type) {
      case 'text':
        if (typeof b.text !== 'string') throw invalid('text must be a string', `${p}.text`)
        text += b.text
        break
      case 'tool_use':
        if (typeof b.id !== 'string' || typeof b.name !== 'string') throw invalid('tool_use needs an id and a name', p)
        toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } })
        break
      case 'thinking':
        if (typeof b.thinking === 'string') reasoning += b.thinking
        break
      case 'redacted_thinking':
        // Encrypted by Anthropic; meaningless to any other model.
        break
      default:
        throw unsupportedBlock(b.type, p)
    }
  }
  const msg: Json = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text }
  if (reasoning !== '') msg.reasoning_content = reasoning
  if (toolCalls.length > 0) msg.tool_calls = toolCalls
  return msg
}

/**
 * A user turn: its `tool_result` blocks become `tool` messages (which must directly follow the
 * assistant's tool calls), the rest one user message after them.
 */
function userMessages(blocks: unknown[], at: string, out: Json[]): void {
  const parts: Json[] = []
  for (let j = 0; j < blocks.length; j++) {
    const b: unknown = blocks[j]
    const p = `${at}.content[${j}]`
    if (!isObject(b)) throw invalid('must be a content block', p)
    switch (b.type) {
      case 'text':
        if (typeof b.text !== 'string') throw invalid('text must be a string', `${p}.text`)
        parts.push({ type: 'text', text: b.text })
        break
      case 'image':
        parts.push(imagePart(b, p))
        break
      case 'document':
        parts.push(documentPart(b, p))
        break
      case 'tool_result': {
        if (typeof b.tool_use_id !== 'string') throw invalid('tool_use_id must be a string', `${p}.tool_use_id`)
        const images: Json[] = []
        const text = toolResultText(b.content, p, images)
        out.push({ role: 'tool', tool_call_id: b.tool_use_id, content: b.is_error === true && text === '' ? 'error' : text })
        // Tool messages carry text only: images a tool returned follow as user content.
        for (const image of images) parts.push(image)
        break
      }
      default:
        throw unsupportedBlock(b.type, p)
    }
  }
  if (parts.length === 0) return
  const onlyText = parts.every((x) => x.type === 'text')
  out.push({ role: 'user', content: onlyText && parts.length === 1 ? parts[0]!.text : parts })
}

function toolResultText(content: unknown, at: string, images: Json[]): string {
  if (content === undefined || content === null) return ''
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) throw invalid('must be a string or an array of blocks', `${at}.content`)
  let text = ''
  for (let k = 0; k < content.length; k++) {
    const c: unknown = content[k]
    const p = `${at}.content[${k}]`
    if (!isObject(c)) throw invalid('must be a content block', p)
    if (c.type === 'text' && typeof c.text === 'string') text += (text === '' ? '' : '\n') + c.text
    else if (c.type === 'image') images.push(imagePart(c, p))
    else throw unsupportedBlock(c.type, p)
  }
  return text
}

function imagePart(b: Json, at: string): Json {
  const source = b.source
  if (!isObject(source)) throw invalid('an image needs a source', `${at}.source`)
  if (source.type === 'base64') {
    if (typeof source.media_type !== 'string' || typeof source.data !== 'string') throw invalid('base64 images need media_type and data', `${at}.source`)
    return { type: 'image_url', image_url: { url: `data:${source.media_type};base64,${source.data}` } }
  }
  if (source.type === 'url' && typeof source.url === 'string') return { type: 'image_url', image_url: { url: source.url } }
  throw invalid(`image source type ${JSON.stringify(source.type)} is not supported; use "base64" or "url"`, `${at}.source.type`)
}

function documentPart(b: Json, at: string): Json {
  const source = b.source
  if (isObject(source) && source.type === 'text' && typeof source.data === 'string') return { type: 'text', text: source.data }
  throw new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', `${at}: only plain-text documents can be sent to an OpenAI-compatible upstream`, { param: at })
}

function unsupportedBlock(type: unknown, at: string): GatewayError {
  return new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', `${at}: content block type ${JSON.stringify(type)}`, { param: at })
}

function translateTool(t: unknown, i: number): Json {
  const at = `tools[${i}]`
  if (!isObject(t)) throw invalid('must be an object', at)
  if (t.type !== undefined && t.type !== null && t.type !== 'custom') {
    // Server tools (web search, code execution, computer use...) run inside Anthropic's service.
    throw new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', `${at}: server tool ${JSON.stringify(t.type)} runs only on Anthropic's service`, { param: at })
  }
  if (typeof t.name !== 'string' || t.name === '') throw invalid('name must be a non-empty string', `${at}.name`)
  const fn: Json = { name: t.name }
  if (typeof t.description === 'string') fn.description = t.description
  fn.parameters = isObject(t.input_schema) ? t.input_schema : { type: 'object', properties: {} }
  return { type: 'function', function: fn }
}

function translateToolChoice(choice: unknown, chat: Json): void {
  if (!isObject(choice)) throw invalid('must be an object', 'tool_choice')
  switch (choice.type) {
    case 'auto': chat.tool_choice = 'auto'; break
    case 'any': chat.tool_choice = 'required'; break
    case 'none': chat.tool_choice = 'none'; break
    case 'tool':
      if (typeof choice.name !== 'string') throw invalid('a "tool" choice needs a name', 'tool_choice.name')
      chat.tool_choice = { type: 'function', function: { name: choice.name } }
      break
    default:
      throw invalid('type must be "auto", "any", "tool" or "none"', 'tool_choice.type')
  }
  if (choice.disable_parallel_tool_use === true && chat.tools !== undefined) chat.parallel_tool_calls = false
}

/**
 * Extended thinking: reasoning models served by vLLM and SGLang switch it in their chat template
 * (`enable_thinking`), and stream it back as `reasoning_content` / `reasoning`.
 */
function translateThinking(thinking: unknown, chat: Json): void {
  if (thinking === undefined || thinking === null) return
  if (!isObject(thinking)) throw invalid('must be an object', 'thinking')
  if (thinking.type === 'enabled' || thinking.type === 'adaptive') chat.chat_template_kwargs = { enable_thinking: true }
  else if (thinking.type === 'disabled') chat.chat_template_kwargs = { enable_thinking: false }
  else throw invalid('type must be "enabled", "adaptive" or "disabled"', 'thinking.type')
}
