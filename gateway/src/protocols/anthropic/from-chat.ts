/**
 * The other direction, for Anthropic-native upstreams (`kind: anthropic`): an OpenAI chat request
 * -> a Messages request, and a Messages answer (JSON or event stream) -> the chat completion the
 * OpenAI client expects. Pure, like the ingress translation.
 */
import { GatewayError } from '../../errors.ts'
import { SSE_DONE, SseReader, sseData } from '../sse.ts'
import { parseArguments } from './response.ts'
import { appendTurn } from '../turns.ts'

type Json = Record<string, unknown>

/** What Messages requires and chat may omit. */
export const DEFAULT_MAX_TOKENS = 4096

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function unsupported(detail: string, param: string): GatewayError {
  return new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', detail, { param })
}

export function chatToMessagesRequest(chat: Json, model: string): Json {
  if (typeof chat.n === 'number' && chat.n > 1) throw unsupported('n > 1: the Messages API returns one answer', 'n')
  const rawMessages = Array.isArray(chat.messages) ? chat.messages : []
  const system: string[] = []
  const messages: Json[] = []
  const push = (role: 'user' | 'assistant', blocks: Json[]): void => appendTurn(messages, role, blocks)
  for (let i = 0; i < rawMessages.length; i++) {
    const m: unknown = rawMessages[i]
    if (!isObject(m)) continue
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(textOf(m.content))
        break
      case 'user':
        push('user', userBlocks(m.content, i))
        break
      case 'assistant':
        push('assistant', assistantBlocks(m))
        break
      case 'tool':
        push('user', [{ type: 'tool_result', tool_use_id: String(m.tool_call_id ?? ''), content: textOf(m.content) }])
        break
    }
  }
  const out: Json = { model, messages, max_tokens: numberOr(chat.max_completion_tokens, numberOr(chat.max_tokens, DEFAULT_MAX_TOKENS)) }
  if (system.length > 0) out.system = system.join('\n\n')
  for (const key of ['temperature', 'top_p', 'top_k'] as const) if (typeof chat[key] === 'number') out[key] = chat[key]
  if (typeof chat.stop === 'string') out.stop_sequences = [chat.stop]
  else if (Array.isArray(chat.stop) && chat.stop.length > 0) out.stop_sequences = chat.stop
  if (typeof chat.user === 'string' && chat.user !== '') out.metadata = { user_id: chat.user }
  if (Array.isArray(chat.tools) && chat.tools.length > 0) {
    out.tools = chat.tools.filter(isObject).map((t) => {
      const fn = isObject(t.function) ? t.function : {}
      const tool: Json = { name: fn.name, input_schema: isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} } }
      if (typeof fn.description === 'string') tool.description = fn.description
      return tool
    })
    const choice = chat.tool_choice
    if (choice === 'required') out.tool_choice = { type: 'any' }
    else if (choice === 'none') out.tool_choice = { type: 'none' }
    else if (isObject(choice) && isObject(choice.function)) out.tool_choice = { type: 'tool', name: choice.function.name }
    else if (chat.parallel_tool_calls === false) out.tool_choice = { type: 'auto' }
    if (chat.parallel_tool_calls === false && isObject(out.tool_choice)) (out.tool_choice as Json).disable_parallel_tool_use = true
  }
  if (chat.stream === true) out.stream = true
  return out
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : fallback
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content.map((p) => (isObject(p) && typeof p.text === 'string' ? p.text : '')).join('')
}

function userBlocks(content: unknown, i: number): Json[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }]
  if (!Array.isArray(content)) return []
  const blocks: Json[] = []
  for (let j = 0; j < content.length; j++) {
    const p: unknown = content[j]
    if (!isObject(p)) continue
    if (p.type === 'text' && typeof p.text === 'string') blocks.push({ type: 'text', text: p.text })
    else if (p.type === 'image_url') blocks.push(imageBlock(p.image_url, `messages[${i}].content[${j}]`))
    else throw unsupported(`messages[${i}].content[${j}]: part type ${JSON.stringify(p.type)}`, `messages[${i}].content[${j}]`)
  }
  return blocks
}

function imageBlock(image: unknown, at: string): Json {
  const url = isObject(image) ? image.url : image
  if (typeof url !== 'string') throw unsupported(`${at}: an image needs a url`, at)
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  if (data !== null) return { type: 'image', source: { type: 'base64', media_type: data[1], data: data[2] } }
  return { type: 'image', source: { type: 'url', url } }
}

function assistantBlocks(m: Json): Json[] {
  const blocks: Json[] = []
  const text = textOf(m.content)
  if (text !== '') blocks.push({ type: 'text', text })
  if (Array.isArray(m.tool_calls)) {
    for (const tc of m.tool_calls) {
      if (!isObject(tc)) continue
      const fn = isObject(tc.function) ? tc.function : {}
      blocks.push({ type: 'tool_use', id: tc.id, name: fn.name, input: parseArguments(fn.arguments) })
    }
  }
  return blocks
}

/** Messages `stop_reason` -> chat `finish_reason`. */
export function finishReason(stop: unknown): string {
  switch (stop) {
    case 'max_tokens': return 'length'
    case 'tool_use': return 'tool_calls'
    case 'refusal': return 'content_filter'
  }
  return 'stop'
}

/** Messages usage -> chat usage: OpenAI counts cached prompt tokens inside `prompt_tokens`. */
export function chatUsage(u: unknown): Json {
  const o = isObject(u) ? u : {}
  const n = (v: unknown): number => (typeof v === 'number' ? v : 0)
  const cached = n(o.cache_read_input_tokens)
  const prompt = n(o.input_tokens) + cached + n(o.cache_creation_input_tokens)
  const completion = n(o.output_tokens)
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } }
}

function chatId(id: unknown): string {
  return 'chatcmpl-' + (typeof id === 'string' ? id.replace(/^msg_/, '') : 'velox')
}

export function messageToChat(msg: Json, model: string, created: number): Json {
  let text = ''
  let reasoning = ''
  const toolCalls: Json[] = []
  for (const b of Array.isArray(msg.content) ? msg.content : []) {
    if (!isObject(b)) continue
    if (b.type === 'text' && typeof b.text === 'string') text += b.text
    else if (b.type === 'thinking' && typeof b.thinking === 'string') reasoning += b.thinking
    else if (b.type === 'tool_use') toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } })
  }
  const message: Json = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text }
  if (reasoning !== '') message.reasoning_content = reasoning
  if (toolCalls.length > 0) message.tool_calls = toolCalls
  return {
    id: chatId(msg.id),
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(msg.stop_reason) }],
    usage: chatUsage(msg.usage),
  }
}

/**
 * Messages event stream -> `chat.completion.chunk` stream, event by event. The usage chunk (when
 * the client asked for it) and `[DONE]` follow `message_stop`; an `error` event becomes the
 * chat-style `data: {"error":...}` and ends the stream.
 */
export class MessagesToChatStream {
  private readonly reader: SseReader
  private readonly model: string
  private readonly created: number
  private readonly includeUsage: boolean
  private id: string
  private usage: Json
  private tools: number
  private blockIsTool: boolean
  done: boolean

  constructor(model: string, created: number, includeUsage: boolean) {
    this.reader = new SseReader()
    this.model = model
    this.created = created
    this.includeUsage = includeUsage
    this.id = 'chatcmpl-velox'
    this.usage = {}
    this.tools = 0
    this.blockIsTool = false
    this.done = false
  }

  push(chunk: Buffer | string): string {
    if (this.done) return ''
    let out = ''
    for (const ev of this.reader.push(chunk)) out += this.event(ev.event, ev.data)
    return out
  }

  end(): string {
    if (this.done) return ''
    let out = ''
    for (const ev of this.reader.end()) out += this.event(ev.event, ev.data)
    if (this.done) return out
    this.done = true
    return out + sseData(JSON.stringify({ error: { message: 'The upstream stream ended before the message was complete', type: 'server_error', param: null, code: 'GW_ERR_UPSTREAM_STREAM_BROKEN' } }))
  }

  private chunk(delta: Json, finish: string | null): string {
    const c: Json = { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] }
    if (this.includeUsage) c.usage = null
    return sseData(JSON.stringify(c))
  }

  private event(type: string | null, data: string): string {
    if (this.done || type === 'ping') return ''
    let e: Json
    try {
      e = JSON.parse(data) as Json
    } catch {
      return ''
    }
    switch (e.type ?? type) {
      case 'message_start': {
        const m = isObject(e.message) ? e.message : {}
        this.id = chatId(m.id)
        this.usage = isObject(m.usage) ? { ...m.usage } : {}
        return this.chunk({ role: 'assistant', content: '' }, null)
      }
      case 'content_block_start': {
        const b = isObject(e.content_block) ? e.content_block : {}
        this.blockIsTool = b.type === 'tool_use'
        if (!this.blockIsTool) return ''
        return this.chunk({ tool_calls: [{ index: this.tools++, id: b.id, type: 'function', function: { name: b.name, arguments: '' } }] }, null)
      }
      case 'content_block_delta': {
        const d = isObject(e.delta) ? e.delta : {}
        if (d.type === 'text_delta') return this.chunk({ content: d.text }, null)
        if (d.type === 'thinking_delta') return this.chunk({ reasoning_content: d.thinking }, null)
        if (d.type === 'input_json_delta' && this.blockIsTool) return this.chunk({ tool_calls: [{ index: this.tools - 1, function: { arguments: d.partial_json } }] }, null)
        return ''
      }
      case 'message_delta': {
        if (isObject(e.usage)) Object.assign(this.usage, e.usage)
        const d = isObject(e.delta) ? e.delta : {}
        return this.chunk({}, finishReason(d.stop_reason))
      }
      case 'message_stop': {
        this.done = true
        let out = ''
        if (this.includeUsage) out += sseData(JSON.stringify({ id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: chatUsage(this.usage) }))
        return out + SSE_DONE
      }
      case 'error': {
        this.done = true
        const err = isObject(e.error) ? e.error : {}
        const errType = typeof err.type === 'string' ? err.type : 'api_error'
        return sseData(JSON.stringify({ error: { message: typeof err.message === 'string' ? err.message : 'upstream error', type: errType, param: null, code: errType } }))
      }
    }
    return ''
  }
}
