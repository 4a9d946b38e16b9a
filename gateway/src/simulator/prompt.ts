/**
 * What the vLLM-like engine sees of a request: the prompt as one string (a chat template over the
 * messages), its length in tokens (about four characters each) and the chained hashes of its full
 * KV blocks. Two requests share cached blocks exactly as far as their rendered prompts agree.
 */

/** Characters per token of the simulated tokenizer. */
export const CHARS_PER_TOKEN = 4

export interface EnginePrompt {
  readonly tokens: number
  /** hashes[i] identifies block i and every block before it; full blocks only. */
  readonly hashes: Float64Array
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    let s = ''
    for (const part of content) {
      if (typeof part === 'string') s += part
      else if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') s += (part as { text: string }).text
    }
    return s
  }
  return content === undefined || content === null ? '' : JSON.stringify(content)
}

/** The text a chat template would produce: role markers and contents, in order. */
export function renderPrompt(body: Record<string, unknown>): string {
  const messages = body.messages
  if (Array.isArray(messages)) {
    let s = ''
    for (const m of messages) {
      const msg = (m ?? {}) as { role?: unknown; content?: unknown }
      s += '<|' + String(msg.role) + '|>' + contentText(msg.content) + '\n'
    }
    return s + '<|assistant|>'
  }
  const prompt = body.prompt
  if (typeof prompt === 'string') return prompt
  if (Array.isArray(prompt)) return prompt.map((p) => (typeof p === 'string' ? p : Array.isArray(p) ? p.join(' ') : '')).join('\n')
  return ''
}

/** 53-bit chained hash of one block: two 32-bit FNV-1a lanes seeded by the previous block's hash. */
function blockHash(prev: number, text: string, start: number, end: number): number {
  let a = (0x811c9dc5 ^ (prev % 0x100000000)) >>> 0
  let b = (0x01000193 ^ Math.floor(prev / 0x100000000)) >>> 0
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193) >>> 0
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0
  }
  b ^= b >>> 15
  return (b & 0x1fffff) * 0x100000000 + a
}

export function enginePrompt(body: Record<string, unknown>, blockTokens: number): EnginePrompt {
  const text = renderPrompt(body)
  const tokens = Math.max(1, Math.ceil(text.length / CHARS_PER_TOKEN))
  const blockChars = blockTokens * CHARS_PER_TOKEN
  const full = Math.floor(text.length / blockChars)
  const hashes = new Float64Array(full)
  let prev = 0
  for (let i = 0; i < full; i++) {
    prev = blockHash(prev, text, i * blockChars, (i + 1) * blockChars)
    hashes[i] = prev
  }
  return { tokens, hashes }
}
