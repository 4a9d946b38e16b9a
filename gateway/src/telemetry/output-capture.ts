/**
 * The completion text of one response, for `gen_ai.output.messages` when
 * `telemetry.tracing.captureContent` is on. Made only for a request whose SERVER span is
 * recording (a sampled one), so an unsampled or untraced request never pays for it. It reads the
 * upstream's body as it passes: the events of a stream one line at a time, a buffered body whole
 * at the end. Text is kept up to `maxChars` characters in all; past that it stops reading and the
 * kept text ends with TRUNCATED_MARKER. The shapes read: OpenAI chat completions, completions,
 * Responses, and Anthropic Messages (an upstream that speaks it natively).
 */
import { StringDecoder } from 'node:string_decoder'

export const TRUNCATED_MARKER = '…[truncated]'
/** Default for `telemetry.tracing.contentMaxLength`. */
export const DEFAULT_CONTENT_MAX_LENGTH = 16_384
/** A buffered body is parsed whole: larger than this it is not read at all (the attribute says truncated). */
const bodyBytesFor = (maxChars: number): number => 4 * maxChars + 65_536

interface OutputMessage {
  role: 'assistant'
  parts: Array<{ type: 'text'; content: string }>
  finish_reason?: string
}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

export class OutputCapture {
  readonly #maxChars: number
  readonly #sse: boolean
  /** Text per choice (OpenAI `index`, Responses `output_index`; 0 otherwise). */
  readonly #text: Map<number, string>
  readonly #finish: Map<number, string>
  #chars: number
  #truncated: boolean
  #decoder: StringDecoder | null
  #pending: string
  #body: Buffer[]
  #bodyBytes: number

  constructor(sse: boolean, maxChars: number) {
    this.#maxChars = maxChars
    this.#sse = sse
    this.#text = new Map()
    this.#finish = new Map()
    this.#chars = 0
    this.#truncated = false
    this.#decoder = sse ? new StringDecoder('utf8') : null
    this.#pending = ''
    this.#body = []
    this.#bodyBytes = 0
  }

  add(chunk: Buffer): void {
    if (this.#truncated) return
    if (!this.#sse) {
      this.#bodyBytes += chunk.length
      if (this.#bodyBytes > bodyBytesFor(this.#maxChars)) {
        this.#truncated = true
        this.#body = []
      } else this.#body.push(chunk)
      return
    }
    const lines = (this.#pending + this.#decoder!.write(chunk)).split('\n')
    this.#pending = lines.pop()!
    // One event line cannot be longer than a body would be allowed to be.
    if (this.#pending.length > bodyBytesFor(this.#maxChars)) {
      this.#truncated = true
      this.#pending = ''
    }
    for (const line of lines) {
      if (this.#truncated) return
      this.#line(line)
    }
  }

  /** `gen_ai.output.messages` as JSON, or null when the response held no text. */
  messages(): string | null {
    if (!this.#sse && !this.#truncated && this.#body.length > 0) {
      const body = this.#body.length === 1 ? this.#body[0]! : Buffer.concat(this.#body)
      this.#body = []
      try {
        this.#read(JSON.parse(body.toString('utf8')))
      } catch {
        // Not JSON (an upstream error page, a compressed body): no text.
      }
    } else if (this.#sse && this.#pending.length > 0 && !this.#truncated) {
      this.#line(this.#pending)
      this.#pending = ''
    }
    if (this.#text.size === 0 && !this.#truncated) return null
    const indexes = [...new Set([...this.#text.keys(), ...this.#finish.keys()])].sort((a, b) => a - b)
    if (indexes.length === 0) indexes.push(0)
    const out: OutputMessage[] = indexes.map((i) => {
      const m: OutputMessage = { role: 'assistant', parts: [{ type: 'text', content: this.#text.get(i) ?? '' }] }
      const finish = this.#finish.get(i)
      if (finish !== undefined) m.finish_reason = finish
      return m
    })
    if (this.#truncated) {
      const last = out.at(-1)!.parts[0]!
      last.content += TRUNCATED_MARKER
    }
    return JSON.stringify(out)
  }

  #line(line: string): void {
    if (!line.startsWith('data:')) return
    const data = line.slice(5).trim()
    if (data.length === 0 || data === '[DONE]') return
    let event: unknown
    try {
      event = JSON.parse(data)
    } catch {
      return
    }
    if (isObject(event)) this.#read(event)
  }

  #append(index: number, text: unknown): void {
    if (typeof text !== 'string' || text.length === 0 || this.#truncated) return
    const room = this.#maxChars - this.#chars
    const kept = text.length > room ? text.slice(0, room) : text
    this.#text.set(index, (this.#text.get(index) ?? '') + kept)
    this.#chars += kept.length
    if (kept.length < text.length) this.#truncated = true
  }

  #finishReason(index: number, reason: unknown): void {
    if (typeof reason === 'string') this.#finish.set(index, reason)
  }

  /** One stream event or one whole body, in whichever of the known shapes it is. */
  #read(v: unknown): void {
    if (!isObject(v)) return
    if (Array.isArray(v.choices)) {
      // Chat completions (`delta` in a stream, `message` in a body) and completions (`text`).
      for (const c of v.choices) {
        if (!isObject(c)) continue
        const index = typeof c.index === 'number' ? c.index : 0
        const holder = isObject(c.delta) ? c.delta : isObject(c.message) ? c.message : null
        if (holder !== null) this.#append(index, textOf(holder.content))
        else this.#append(index, c.text)
        this.#finishReason(index, c.finish_reason)
      }
      return
    }
    switch (v.type) {
      // Responses API stream.
      case 'response.output_text.delta':
        this.#append(typeof v.output_index === 'number' ? v.output_index : 0, v.delta)
        return
      case 'response.completed':
        this.#finishReason(0, isObject(v.response) ? statusReason(v.response.status) : undefined)
        return
      // Anthropic Messages stream.
      case 'content_block_delta':
        if (isObject(v.delta) && v.delta.type === 'text_delta') this.#append(0, v.delta.text)
        return
      case 'message_delta':
        if (isObject(v.delta)) this.#finishReason(0, v.delta.stop_reason)
        return
      // Anthropic Messages body.
      case 'message':
        if (Array.isArray(v.content)) this.#append(0, textOf(v.content))
        this.#finishReason(0, v.stop_reason)
        return
    }
    if (v.object === 'response' && Array.isArray(v.output)) {
      // Responses API body: the message items' output_text parts.
      for (const item of v.output) {
        if (isObject(item) && item.type === 'message' && Array.isArray(item.content)) {
          for (const part of item.content) if (isObject(part) && part.type === 'output_text') this.#append(0, part.text)
        }
      }
      this.#finishReason(0, statusReason(v.status))
    }
  }
}

/** A message's content: a string, or the text of its text parts. */
function textOf(content: unknown): string | null {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return null
  let out = ''
  for (const p of content) if (isObject(p) && p.type === 'text' && typeof p.text === 'string') out += p.text
  return out
}

function statusReason(status: unknown): string | undefined {
  if (status === 'completed') return 'stop'
  if (status === 'incomplete') return 'length'
  return typeof status === 'string' ? status : undefined
}
