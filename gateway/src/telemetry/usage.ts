/**
 * Reads token usage from the tail of a response without parsing the whole body: OpenAI-compatible
 * servers put `usage` last in a JSON body and in the last data event of a stream (when the client
 * asked for `stream_options.include_usage`); Anthropic's Messages and Bedrock's Converse do too
 * (`input_tokens`, `inputTokens`). Called once per response, after it has been sent.
 */

const USAGE = Buffer.from('"usage"')

export interface Usage {
  prompt: number
  completion: number
}

/** Bytes after `"usage"` worth scanning: the block is small. */
const WINDOW = 512
const KEYS = {
  prompt: Buffer.from('"prompt_tokens"'),
  input: Buffer.from('"input_tokens"'),
  completion: Buffer.from('"completion_tokens"'),
  output: Buffer.from('"output_tokens"'),
  // Bedrock's Converse (JSON answers, and the payload of ConverseStream's metadata event).
  inputCamel: Buffer.from('"inputTokens"'),
  outputCamel: Buffer.from('"outputTokens"'),
}

/**
 * Usage from the response's last chunk, else the one before it (a stream's usage event usually
 * precedes `data: [DONE]`). Only a usage block split across the two chunks costs a copy.
 */
export function readUsage(last: Buffer | null, prev: Buffer | null = null): Usage | null {
  if (last === null) return null
  const found = readUsageIn(last) ?? (prev !== null ? readUsageIn(prev) : null)
  if (found !== null || prev === null) return found
  return last.length < WINDOW ? readUsageIn(Buffer.concat([prev, last])) : null
}

function readUsageIn(buf: Buffer): Usage | null {
  const at = buf.lastIndexOf(USAGE)
  if (at === -1) return null
  const end = Math.min(buf.length, at + WINDOW)
  const prompt = numberAfter(buf, KEYS.prompt, at, end) ?? numberAfter(buf, KEYS.input, at, end) ?? numberAfter(buf, KEYS.inputCamel, at, end)
  const completion = numberAfter(buf, KEYS.completion, at, end) ?? numberAfter(buf, KEYS.output, at, end) ?? numberAfter(buf, KEYS.outputCamel, at, end)
  if (prompt === null && completion === null) return null
  return { prompt: prompt ?? 0, completion: completion ?? 0 }
}

function numberAfter(buf: Buffer, key: Buffer, from: number, end: number): number | null {
  const k = buf.indexOf(key, from)
  if (k === -1 || k >= end) return null
  let i = k + key.length
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x3a)) i++
  let n = 0
  let digits = 0
  for (; i < end; i++) {
    const c = buf[i]! - 0x30
    if (c < 0 || c > 9) break
    n = n * 10 + c
    digits++
  }
  return digits > 0 ? n : null
}
