/**
 * Reads token usage from the tail of a response without parsing the whole body: OpenAI-compatible
 * servers put `usage` last in a JSON body and in the last data event of a stream (when the client
 * asked for `stream_options.include_usage`). Called once per response, after it has been sent.
 */

const USAGE = Buffer.from('"usage"')

export interface Usage {
  prompt: number
  completion: number
}

/** `tail` is the response's last bytes (the last one or two chunks); returns null when absent. */
export function readUsage(tail: Buffer | null): Usage | null {
  if (tail === null) return null
  const at = tail.lastIndexOf(USAGE)
  if (at === -1) return null
  const text = tail.toString('latin1', at, Math.min(tail.length, at + 512))
  const prompt = numberAfter(text, '"prompt_tokens"') ?? numberAfter(text, '"input_tokens"')
  const completion = numberAfter(text, '"completion_tokens"') ?? numberAfter(text, '"output_tokens"')
  if (prompt === null && completion === null) return null
  return { prompt: prompt ?? 0, completion: completion ?? 0 }
}

function numberAfter(text: string, key: string): number | null {
  const k = text.indexOf(key)
  if (k === -1) return null
  let i = k + key.length
  while (i < text.length && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x3a)) i++
  let n = 0
  let digits = 0
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i) - 0x30
    if (c < 0 || c > 9) break
    n = n * 10 + c
    digits++
  }
  return digits > 0 ? n : null
}
