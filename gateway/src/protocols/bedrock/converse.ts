/**
 * Amazon Bedrock's Converse API, for `kind: bedrock` upstreams: an OpenAI chat request -> a
 * Converse request, and a Converse answer (JSON, or ConverseStream's events) -> the chat
 * completion the client expects. Pure, like the other translations; the framing of the event
 * stream is event-stream.ts.
 */
import { GatewayError } from '../../errors.ts'
import { parseArguments } from '../anthropic/response.ts'
import type { StreamMessage } from './event-stream.ts'
import { appendTurn } from '../turns.ts'
import { SSE_DONE, sseData } from '../sse.ts'

type Json = Record<string, unknown>

/** What Converse is given when chat names no limit (Bedrock's own default is model-specific and often small). */
export const DEFAULT_MAX_TOKENS = 4096

const IMAGE_FORMATS: Readonly<Record<string, string>> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' }

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function unsupported(detail: string, param: string): GatewayError {
  return new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', detail, { param })
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content.map((p) => (isObject(p) && typeof p.text === 'string' ? p.text : '')).join('')
}

function positiveInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : null
}

export interface ConverseRequest {
  /** The Converse body (the model id goes in the path, not the body). */
  readonly body: Json
  readonly stream: boolean
}

/** chat.completions request -> Converse / ConverseStream request. */
export function chatToConverse(chat: Json): ConverseRequest {
  if (typeof chat.n === 'number' && chat.n > 1) throw unsupported('n > 1: Converse returns one answer', 'n')
  const rawMessages = Array.isArray(chat.messages) ? chat.messages : []
  const system: Json[] = []
  const messages: Json[] = []
  let usesTools = false
  const push = (role: 'user' | 'assistant', blocks: Json[]): void => appendTurn(messages, role, blocks)
  for (let i = 0; i < rawMessages.length; i++) {
    const m: unknown = rawMessages[i]
    if (!isObject(m)) continue
    switch (m.role) {
      case 'system':
      case 'developer': {
        const text = textOf(m.content)
        if (text !== '') system.push({ text })
        break
      }
      case 'user':
        push('user', userBlocks(m.content, i))
        break
      case 'assistant': {
        const blocks = assistantBlocks(m)
        if (blocks.some((b) => 'toolUse' in b)) usesTools = true
        push('assistant', blocks)
        break
      }
      case 'tool':
        usesTools = true
        push('user', [{ toolResult: { toolUseId: String(m.tool_call_id ?? ''), content: [{ text: textOf(m.content) }] } }])
        break
    }
  }
  const body: Json = { messages }
  if (system.length > 0) body.system = system
  const inference: Json = { maxTokens: positiveInt(chat.max_completion_tokens) ?? positiveInt(chat.max_tokens) ?? DEFAULT_MAX_TOKENS }
  if (typeof chat.temperature === 'number') inference.temperature = chat.temperature
  if (typeof chat.top_p === 'number') inference.topP = chat.top_p
  if (typeof chat.stop === 'string') inference.stopSequences = [chat.stop]
  else if (Array.isArray(chat.stop) && chat.stop.length > 0) inference.stopSequences = chat.stop
  body.inferenceConfig = inference
  // top_k has no Converse field; Anthropic, Mistral and Llama models on Bedrock read it here.
  if (typeof chat.top_k === 'number') body.additionalModelRequestFields = { top_k: chat.top_k }
  if (typeof chat.user === 'string' && chat.user !== '') body.requestMetadata = { user: chat.user.slice(0, 256) }
  const tools = Array.isArray(chat.tools) ? chat.tools.filter(isObject) : []
  const choice = chat.tool_choice
  // Converse has no "none": with no tool blocks in the history, the tools are simply not offered.
  if (tools.length > 0 && (choice !== 'none' || usesTools)) {
    const toolConfig: Json = {
      tools: tools.map((t) => {
        const fn = isObject(t.function) ? t.function : {}
        const spec: Json = { name: fn.name, inputSchema: { json: isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} } } }
        if (typeof fn.description === 'string' && fn.description !== '') spec.description = fn.description
        return { toolSpec: spec }
      }),
    }
    if (choice === 'required') toolConfig.toolChoice = { any: {} }
    else if (isObject(choice) && isObject(choice.function)) toolConfig.toolChoice = { tool: { name: choice.function.name } }
    else if (choice === 'auto') toolConfig.toolChoice = { auto: {} }
    body.toolConfig = toolConfig
  } else if (usesTools) {
    throw unsupported('tool calls in the conversation but no tools: Converse needs the tool definitions', 'tools')
  }
  return { body, stream: chat.stream === true }
}

function userBlocks(content: unknown, i: number): Json[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }]
  if (!Array.isArray(content)) return []
  const blocks: Json[] = []
  for (let j = 0; j < content.length; j++) {
    const p: unknown = content[j]
    if (!isObject(p)) continue
    const at = `messages[${i}].content[${j}]`
    if (p.type === 'text' && typeof p.text === 'string') blocks.push({ text: p.text })
    else if (p.type === 'image_url') blocks.push(imageBlock(p.image_url, at))
    else throw unsupported(`${at}: part type ${JSON.stringify(p.type)}`, at)
  }
  return blocks
}

/** Converse takes image bytes (or S3 locations), never a URL to fetch. */
function imageBlock(image: unknown, at: string): Json {
  const url = isObject(image) ? image.url : image
  if (typeof url !== 'string') throw unsupported(`${at}: an image needs a url`, at)
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  if (data === null) throw unsupported(`${at}: Bedrock takes images as data: URLs (base64), not links`, at)
  const format = IMAGE_FORMATS[data[1]!.toLowerCase()]
  if (format === undefined) throw unsupported(`${at}: image type ${data[1]} (Bedrock takes png, jpeg, gif, webp)`, at)
  return { image: { format, source: { bytes: data[2] } } }
}

function assistantBlocks(m: Json): Json[] {
  const blocks: Json[] = []
  const text = textOf(m.content)
  if (text !== '') blocks.push({ text })
  if (Array.isArray(m.tool_calls)) {
    for (const tc of m.tool_calls) {
      if (!isObject(tc)) continue
      const fn = isObject(tc.function) ? tc.function : {}
      blocks.push({ toolUse: { toolUseId: String(tc.id ?? ''), name: fn.name, input: parseArguments(fn.arguments) } })
    }
  }
  return blocks
}

/** Converse `stopReason` -> chat `finish_reason`. */
export function finishReason(stop: unknown): string {
  switch (stop) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length'
    case 'tool_use': return 'tool_calls'
    case 'guardrail_intervened':
    case 'content_filtered':
      return 'content_filter'
  }
  return 'stop'
}

/** Converse usage -> chat usage: OpenAI counts cached prompt tokens inside `prompt_tokens`. */
export function chatUsage(u: unknown): Json {
  const o = isObject(u) ? u : {}
  const n = (v: unknown): number => (typeof v === 'number' ? v : 0)
  const cached = n(o.cacheReadInputTokens)
  const prompt = n(o.inputTokens) + cached + n(o.cacheWriteInputTokens)
  const completion = n(o.outputTokens)
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } }
}

/** A chat completion id from Bedrock's request id (Converse answers carry no id of their own). */
export function chatId(requestId: string | null): string {
  return 'chatcmpl-' + (requestId !== null && requestId !== '' ? requestId : 'bedrock')
}

/** A Converse answer -> a chat completion; `model` is the name the client asked for. */
export function converseToChat(answer: Json, model: string, created: number, requestId: string | null): Json {
  const output = isObject(answer.output) ? answer.output : {}
  const msg = isObject(output.message) ? output.message : {}
  let text = ''
  let reasoning = ''
  const toolCalls: Json[] = []
  for (const b of Array.isArray(msg.content) ? msg.content : []) {
    if (!isObject(b)) continue
    if (typeof b.text === 'string') text += b.text
    else if (isObject(b.toolUse)) {
      const t = b.toolUse
      toolCalls.push({ id: t.toolUseId, type: 'function', function: { name: t.name, arguments: JSON.stringify(t.input ?? {}) } })
    } else if (isObject(b.reasoningContent) && isObject(b.reasoningContent.reasoningText) && typeof b.reasoningContent.reasoningText.text === 'string') {
      reasoning += b.reasoningContent.reasoningText.text
    }
  }
  const message: Json = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text }
  if (reasoning !== '') message.reasoning_content = reasoning
  if (toolCalls.length > 0) message.tool_calls = toolCalls
  return {
    id: chatId(requestId),
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(answer.stopReason) }],
    usage: chatUsage(answer.usage),
  }
}

/** An OpenAI-shaped error body from a Bedrock error answer (`{"message":...}` plus `x-amzn-errortype`). */
export function chatErrorBody(status: number, errorType: string | null, text: string): string {
  let message = text.slice(0, 1_000)
  try {
    const parsed: unknown = JSON.parse(text)
    if (isObject(parsed)) {
      const m = parsed.message ?? parsed.Message
      if (typeof m === 'string') message = m
    }
  } catch {
    // Not JSON: the text itself is the message.
  }
  // `ThrottlingException:http://internal.amazon.com/coral/...` -> `ThrottlingException`
  const type = errorType !== null && errorType !== '' ? errorType.split(':')[0]! : status === 429 ? 'ThrottlingException' : status >= 500 ? 'InternalServerException' : 'ValidationException'
  return JSON.stringify({ error: { message, type, param: null, code: type } })
}

/**
 * ConverseStream events -> `chat.completion.chunk` stream, message by message: `messageStart`,
 * `contentBlockStart` (a tool call), `contentBlockDelta` (text, tool input, reasoning),
 * `contentBlockStop`, `messageStop` (the stop reason), `metadata` (usage). The usage chunk (when
 * the client asked for it) and `[DONE]` follow `metadata`; an exception becomes the chat-style
 * `data: {"error":...}` and ends the stream.
 */
export class ConverseStreamToChat {
  private readonly model: string
  private readonly created: number
  private readonly includeUsage: boolean
  private readonly id: string
  /** Converse block index -> chat tool call index, for blocks that are tool calls. */
  private readonly toolIndex: Map<number, number>
  private stopped: boolean
  done: boolean

  constructor(model: string, created: number, includeUsage: boolean, requestId: string | null) {
    this.model = model
    this.created = created
    this.includeUsage = includeUsage
    this.id = chatId(requestId)
    this.toolIndex = new Map()
    this.stopped = false
    this.done = false
  }

  /** The chat events a batch of stream messages makes, as one string ('' for none). */
  push(messages: readonly StreamMessage[]): string {
    let out = ''
    for (const m of messages) {
      if (this.done) break
      out += m.messageType === 'event' ? this.event(m.type, m.payload) : this.error(m.type, m.payload)
    }
    return out
  }

  /** The upstream body ended: the last events, or an error when the message never finished. */
  end(): string {
    if (this.done) return ''
    this.done = true
    // A stream cut after messageStop lost only its usage: the answer itself is complete.
    if (this.stopped) return SSE_DONE
    return sseData(JSON.stringify({ error: { message: 'The upstream stream ended before the message was complete', type: 'server_error', param: null, code: 'GW_ERR_UPSTREAM_STREAM_BROKEN' } }))
  }

  /** A frame that could not be read ends the stream with an error. */
  broken(detail: string): string {
    if (this.done) return ''
    this.done = true
    return sseData(JSON.stringify({ error: { message: `The upstream stream could not be read: ${detail}`, type: 'server_error', param: null, code: 'GW_ERR_UPSTREAM_BAD_RESPONSE' } }))
  }

  private chunk(delta: Json, finish: string | null): string {
    const c: Json = { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] }
    if (this.includeUsage) c.usage = null
    return sseData(JSON.stringify(c))
  }

  private error(type: string, payload: string): string {
    this.done = true
    let message = payload.slice(0, 1_000)
    try {
      const parsed: unknown = JSON.parse(payload)
      if (isObject(parsed) && typeof parsed.message === 'string') message = parsed.message
    } catch {
      // keep the raw text
    }
    const code = type !== '' ? type : 'InternalServerException'
    return sseData(JSON.stringify({ error: { message, type: code, param: null, code } }))
  }

  private event(type: string, payload: string): string {
    let e: Json
    try {
      const parsed: unknown = JSON.parse(payload)
      if (!isObject(parsed)) return ''
      e = parsed
    } catch {
      return ''
    }
    switch (type) {
      case 'messageStart':
        return this.chunk({ role: 'assistant', content: '' }, null)
      case 'contentBlockStart': {
        const start = isObject(e.start) ? e.start : {}
        if (!isObject(start.toolUse)) return ''
        const index = this.toolIndex.size
        this.toolIndex.set(Number(e.contentBlockIndex ?? 0), index)
        return this.chunk({ tool_calls: [{ index, id: start.toolUse.toolUseId, type: 'function', function: { name: start.toolUse.name, arguments: '' } }] }, null)
      }
      case 'contentBlockDelta': {
        const d = isObject(e.delta) ? e.delta : {}
        if (typeof d.text === 'string') return this.chunk({ content: d.text }, null)
        if (isObject(d.toolUse) && typeof d.toolUse.input === 'string') {
          const index = this.toolIndex.get(Number(e.contentBlockIndex ?? 0))
          return index === undefined ? '' : this.chunk({ tool_calls: [{ index, function: { arguments: d.toolUse.input } }] }, null)
        }
        if (isObject(d.reasoningContent) && typeof d.reasoningContent.text === 'string') return this.chunk({ reasoning_content: d.reasoningContent.text }, null)
        return ''
      }
      case 'messageStop':
        this.stopped = true
        return this.chunk({}, finishReason(e.stopReason))
      case 'metadata': {
        this.done = true
        let out = ''
        if (this.includeUsage) out += sseData(JSON.stringify({ id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: chatUsage(e.usage) }))
        return out + SSE_DONE
      }
    }
    return ''
  }
}
