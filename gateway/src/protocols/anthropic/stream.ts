/**
 * OpenAI `chat.completion.chunk` stream -> Anthropic Messages event stream, event by event: each
 * upstream chunk becomes the Anthropic events it implies as soon as it arrives, nothing is held
 * back except the final `message_delta`, which waits for the usage chunk that follows the finish.
 *
 * Grammar produced: `message_start`, `ping`, then per content block `content_block_start`,
 * `content_block_delta`* (`thinking_delta` | `text_delta` | `input_json_delta`),
 * `content_block_stop`, and finally `message_delta` + `message_stop`. An upstream error event
 * (or the gateway's own, when the upstream dies mid-stream) becomes an `error` event and ends
 * the stream.
 */
import { ERRORS } from '../../errors.ts'
import { SseReader, sseEvent, type SseEvent } from '../sse.ts'
import { anthropicErrorBody, errorEvent } from './errors.ts'
import { messageId, reasoningOf, stopReason, usage, type AnthropicUsage, type StopReason } from './response.ts'

type Json = Record<string, unknown>

const BLOCK_NONE = 0
const BLOCK_TEXT = 1
const BLOCK_THINKING = 2
const BLOCK_TOOL = 3

const sse = sseEvent

export class ChatToMessagesStream {
  private readonly model: string
  private readonly stopSequences: readonly string[]
  private readonly reader: SseReader
  private started: boolean
  /** Message ended (message_stop or error sent): anything later is dropped. */
  done: boolean
  private nextBlock: number
  private open: number
  /** OpenAI tool call index of the open tool block. */
  private openTool: number
  private readonly toolBlocks: Map<number, number>
  private stop: { reason: StopReason; sequence: string | null } | null
  private usage: AnthropicUsage | null

  constructor(model: string, stopSequences: readonly string[] = []) {
    this.model = model
    this.stopSequences = stopSequences
    this.reader = new SseReader()
    this.started = false
    this.done = false
    this.nextBlock = 0
    this.open = BLOCK_NONE
    this.openTool = -1
    this.toolBlocks = new Map()
    this.stop = null
    this.usage = null
  }

  /** The Anthropic events for one upstream chunk ('' when it completes no event). */
  push(chunk: Buffer | string): string {
    if (this.done) return ''
    return this.events(this.reader.push(chunk))
  }

  /**
   * The upstream body ended. A stream that finished (a finish reason, or `[DONE]`) gets its
   * closing events; one that stopped short ends with an error event, never as a complete answer.
   */
  end(): string {
    if (this.done) return ''
    let out = this.events(this.reader.end())
    if (this.done) return out
    if (this.stop !== null) return out + this.finish()
    out += this.fail(500, 'The upstream stream ended before the message was complete', 'GW_ERR_UPSTREAM_STREAM_BROKEN')
    return out
  }

  private events(events: SseEvent[]): string {
    let out = ''
    for (const ev of events) {
      if (this.done) break
      out += this.event(ev)
    }
    return out
  }

  private event(ev: SseEvent): string {
    const data = ev.data
    if (data === '[DONE]') return this.finish()
    let obj: Json
    try {
      obj = JSON.parse(data) as Json
    } catch {
      return ''
    }
    if (typeof obj !== 'object' || obj === null) return ''
    if (obj.error !== undefined || ev.event === 'error') return this.upstreamError(obj)
    let out = this.started ? '' : this.start(obj)
    const choices = obj.choices
    if (Array.isArray(choices) && choices.length > 0) {
      const choice = choices[0] as Json
      const delta = choice.delta
      if (typeof delta === 'object' && delta !== null) out += this.delta(delta as Json)
      const finish = choice.finish_reason
      if (finish !== null && finish !== undefined) {
        out += this.closeBlock()
        this.stop = stopReason(finish, choice.stop_reason, this.stopSequences)
      }
    }
    if (obj.usage !== null && obj.usage !== undefined) this.usage = usage(obj.usage)
    return out
  }

  private start(obj: Json): string {
    this.started = true
    const u = obj.usage !== null && obj.usage !== undefined ? usage(obj.usage) : { input_tokens: 0, output_tokens: 0 }
    const message = {
      id: messageId(obj.id),
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: u.input_tokens, output_tokens: 0 },
    }
    return sse('message_start', JSON.stringify({ type: 'message_start', message })) + sse('ping', '{"type":"ping"}')
  }

  private delta(delta: Json): string {
    let out = ''
    const reasoning = reasoningOf(delta)
    if (reasoning !== null) {
      if (this.open !== BLOCK_THINKING) out += this.openBlock(BLOCK_THINKING, '{"type":"thinking","thinking":"","signature":""}')
      out += this.blockDelta('{"type":"thinking_delta","thinking":' + JSON.stringify(reasoning) + '}')
    }
    const text = delta.content
    if (typeof text === 'string' && text !== '') {
      if (this.open !== BLOCK_TEXT) out += this.openBlock(BLOCK_TEXT, '{"type":"text","text":""}')
      out += this.blockDelta('{"type":"text_delta","text":' + JSON.stringify(text) + '}')
    }
    const calls = delta.tool_calls
    if (Array.isArray(calls)) for (const call of calls as Json[]) out += this.toolDelta(call)
    return out
  }

  private toolDelta(call: Json): string {
    let out = ''
    const index = typeof call.index === 'number' ? call.index : 0
    const fn = (typeof call.function === 'object' && call.function !== null ? call.function : {}) as Json
    if (!this.toolBlocks.has(index)) {
      const id = typeof call.id === 'string' && call.id !== '' ? call.id : `toolu_${index}`
      const name = typeof fn.name === 'string' ? fn.name : ''
      out += this.openBlock(BLOCK_TOOL, '{"type":"tool_use","id":' + JSON.stringify(id) + ',"name":' + JSON.stringify(name) + ',"input":{}}')
      this.openTool = index
      this.toolBlocks.set(index, this.nextBlock - 1)
    }
    const args = fn.arguments
    // Blocks are sequential in Anthropic's grammar: fragments of a call whose block has closed cannot be sent.
    if (typeof args === 'string' && args !== '' && this.open === BLOCK_TOOL && this.openTool === index) {
      out += this.blockDelta('{"type":"input_json_delta","partial_json":' + JSON.stringify(args) + '}')
    }
    return out
  }

  private openBlock(kind: number, block: string): string {
    const out = this.closeBlock()
    this.open = kind
    return out + sse('content_block_start', '{"type":"content_block_start","index":' + this.nextBlock++ + ',"content_block":' + block + '}')
  }

  private blockDelta(delta: string): string {
    return sse('content_block_delta', '{"type":"content_block_delta","index":' + (this.nextBlock - 1) + ',"delta":' + delta + '}')
  }

  private closeBlock(): string {
    if (this.open === BLOCK_NONE) return ''
    this.open = BLOCK_NONE
    this.openTool = -1
    return sse('content_block_stop', '{"type":"content_block_stop","index":' + (this.nextBlock - 1) + '}')
  }

  private finish(): string {
    let out = this.started ? '' : this.start({})
    out += this.closeBlock()
    const stop = this.stop ?? { reason: 'end_turn', sequence: null }
    const u = this.usage ?? { input_tokens: 0, output_tokens: 0 }
    const delta = { type: 'message_delta', delta: { stop_reason: stop.reason, stop_sequence: stop.sequence }, usage: u }
    this.done = true
    return out + sse('message_delta', JSON.stringify(delta)) + sse('message_stop', '{"type":"message_stop"}')
  }

  private upstreamError(obj: Json): string {
    const e = (typeof obj.error === 'object' && obj.error !== null ? obj.error : obj) as Json
    const message = typeof e.message === 'string' ? e.message : 'The upstream failed while generating'
    const code = typeof e.code === 'string' ? e.code : null
    return this.fail(statusOf(e.type, code), message, code)
  }

  private fail(status: number, message: string, code: string | null): string {
    this.done = true
    return errorEvent(anthropicErrorBody(status, message, code))
  }
}

/** The status an error event stands for: the gateway's own code says it, else the OpenAI type. */
function statusOf(type: unknown, code: string | null): number {
  if (code !== null && code in ERRORS) return ERRORS[code as keyof typeof ERRORS].status
  switch (type) {
    case 'rate_limit_error': return 429
    case 'invalid_request_error': return 400
    case 'overloaded_error': return 529
  }
  return 500
}
