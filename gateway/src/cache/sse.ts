/** Server-sent events: parsing a complete recorded stream and writing events. */

export interface SseEvent {
  readonly event: string | null
  readonly data: string
}

/** Events of a complete stream; comments and fields other than `event`/`data` are dropped. */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = []
  const normalised = text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text
  for (const block of normalised.split('\n\n')) {
    if (block.length === 0) continue
    let event: string | null = null
    let data: string | null = null
    for (const line of block.split('\n')) {
      if (line.length === 0 || line.charCodeAt(0) === 58 /* ':' */) continue
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      let value = colon === -1 ? '' : line.slice(colon + 1)
      if (value.charCodeAt(0) === 32) value = value.slice(1)
      if (field === 'data') data = data === null ? value : data + '\n' + value
      else if (field === 'event') event = value
    }
    if (data !== null) events.push({ event, data })
  }
  return events
}

// The writers are the request path's one set (protocols/sse.ts).
export { sseData, sseEvent, SSE_DONE } from '../protocols/sse.ts'
