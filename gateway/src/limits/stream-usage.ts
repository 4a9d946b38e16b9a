/**
 * Token limits need the real usage of a stream, which OpenAI-compatible servers send only when
 * asked (`stream_options.include_usage`), as one last event with `"choices":[]` before `[DONE]`.
 * When a client did not ask, the gateway asks for it and takes that event out of what the client
 * receives. (Once asked, servers also add `"usage":null` to every other chunk, as OpenAI does; that
 * field is left in: clients' parsers accept it.)
 */

const INJECTED = Buffer.from('{"stream_options":{"include_usage":true},')
const USAGE = Buffer.from('"usage"')
const EVENT_END = Buffer.from('\n\n')
const EMPTY_CHOICES = /"choices"\s*:\s*\[\s*\]/

/** True for a streamed chat or text completion whose client did not ask for usage. */
export function needsStreamUsage(endpoint: string, body: Record<string, unknown>): boolean {
  if (body.stream !== true || (endpoint !== 'chat.completions' && endpoint !== 'completions')) return false
  const so = body.stream_options
  return !(so !== null && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true)
}

/** The request bytes asking for usage: the client's own with one field added, or re-serialized when it set stream_options itself. */
export function askForStreamUsage(raw: Buffer, body: Record<string, unknown>): Buffer {
  if (body.stream_options === undefined) {
    let i = 0
    while (i < raw.length && raw[i] !== 0x7b) i++ // the opening brace (after any whitespace)
    if (i < raw.length) return Buffer.concat([INJECTED, raw.subarray(i + 1)])
  }
  const so = body.stream_options !== null && typeof body.stream_options === 'object' ? (body.stream_options as Record<string, unknown>) : {}
  return Buffer.from(JSON.stringify({ ...body, stream_options: { ...so, include_usage: true } }))
}

/**
 * Removes the usage-only event from an SSE stream, chunk by chunk. Complete events pass at once;
 * only the bytes of an event not yet complete (useless to an SSE client until its blank line
 * arrives) wait for the rest of it, so no event reaches the client later than it could use it.
 */
export class UsageEventFilter {
  #pending: Buffer | null = null

  /** The bytes to send for this chunk (possibly empty). */
  filter(chunk: Buffer): Buffer {
    const data = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk])
    this.#pending = null
    const end = data.lastIndexOf(EVENT_END)
    if (end === -1) {
      this.#pending = data
      return EMPTY
    }
    const complete = end + EVENT_END.length
    if (complete < data.length) this.#pending = data.subarray(complete)
    const head = complete === data.length ? data : data.subarray(0, complete)
    if (head.indexOf(USAGE) === -1) return head
    return dropUsageEvents(head)
  }

  /** Whatever is left when the stream ends (an unterminated last event passes as it is). */
  flush(): Buffer {
    const rest = this.#pending ?? EMPTY
    this.#pending = null
    return rest
  }
}

const EMPTY = Buffer.alloc(0)

function dropUsageEvents(events: Buffer): Buffer {
  const kept: Buffer[] = []
  let start = 0
  while (start < events.length) {
    let end = events.indexOf(EVENT_END, start)
    end = end === -1 ? events.length : end + EVENT_END.length
    const event = events.subarray(start, end)
    if (!(event.indexOf(USAGE) !== -1 && EMPTY_CHOICES.test(event.toString('latin1')))) kept.push(event)
    start = end
  }
  return kept.length === 1 ? kept[0]! : Buffer.concat(kept)
}
