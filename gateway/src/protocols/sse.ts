/**
 * Server-sent events on the request path: the one set of writers (every layer that writes an
 * event uses these), and an incremental reader (bytes in, whole events out) for translating
 * streams event by event. Events may be split across chunks anywhere (a multi-byte character included).
 */
import { StringDecoder } from 'node:string_decoder'

export interface SseEvent {
  /** The `event:` field, or null. */
  event: string | null
  /** The `data:` lines joined with `\n`. */
  data: string
}

export class SseReader {
  private readonly decoder: StringDecoder
  private pending: string
  private event: string | null
  private data: string[]

  constructor() {
    this.decoder = new StringDecoder('utf8')
    this.pending = ''
    this.event = null
    this.data = []
  }

  /** The events completed by this chunk, in order. */
  push(chunk: Buffer | string): SseEvent[] {
    const text = this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk))
    const out: SseEvent[] = []
    let start = 0
    for (;;) {
      const nl = text.indexOf('\n', start)
      if (nl === -1) break
      let end = nl
      if (end > start && text.charCodeAt(end - 1) === 13) end--
      this.line(text.slice(start, end), out)
      start = nl + 1
    }
    this.pending = start === 0 ? text : text.slice(start)
    return out
  }

  /** At the end of the body: an event left without its blank line still counts. */
  end(): SseEvent[] {
    const out: SseEvent[] = []
    const rest = this.pending + this.decoder.end()
    this.pending = ''
    if (rest !== '') this.line(rest, out)
    this.line('', out)
    return out
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.data.length > 0 || this.event !== null) out.push({ event: this.event, data: this.data.join('\n') })
      this.event = null
      this.data = []
      return
    }
    if (line.charCodeAt(0) === 58) return // ":" comment
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === 'data') this.data.push(value)
    else if (field === 'event') this.event = value
  }
}

/** A `data:`-only event (OpenAI's chat, completions and error events). */
export function sseData(json: string): string {
  return 'data: ' + json + '\n\n'
}

/** A named event (Anthropic's and the Responses API's events). */
export function sseEvent(event: string, json: string): string {
  return 'event: ' + event + '\ndata: ' + json + '\n\n'
}

/** The end of an OpenAI stream. */
export const SSE_DONE = 'data: [DONE]\n\n'
