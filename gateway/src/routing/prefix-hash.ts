/**
 * The prompt prefix as a chain of block hashes, the way llm-d's approximate prefix scorer sees it:
 * the prompt text (chat roles and contents in order) is cut into blocks of `blockChars`
 * characters, and block i's hash covers every character up to the end of block i. Two prompts
 * share their first k hashes exactly when their first k blocks of text agree, which is when a
 * pod that served one holds the other's leading KV blocks. No tokenizer: about four characters
 * per token is close enough to tell which member holds most of a prefix.
 *
 * Only full blocks count (a partial last block is never shared), and at most `maxBlocks`.
 */
import { mix32 } from './hash.ts'

const FNV_PRIME = 0x01000193

/** Separators between fields, so moving text from one message to the next changes the hash. */
const ROLE_END = 0x1e
const MESSAGE_END = 0x1f

/**
 * Reusable state of one hashing pass: no allocation until the result is copied out. Two UTF-16
 * units are folded per multiply (a 32-bit word), which halves the dependent multiply chain that
 * bounds the speed of FNV on long prompts; the output of every block is avalanched by mix32.
 */
class Hasher {
  h = 0
  /** A character waiting for its pair (-1: none). */
  half = -1
  inBlock = 0
  count = 0
  blockWords = 0
  maxBlocks = 0
  out: Uint32Array = new Uint32Array(256)

  reset(seed: number, blockChars: number, maxBlocks: number): void {
    this.h = seed
    this.half = -1
    this.inBlock = 0
    this.count = 0
    this.blockWords = blockChars >>> 1
    this.maxBlocks = maxBlocks
    if (this.out.length < maxBlocks) this.out = new Uint32Array(maxBlocks)
  }

  get full(): boolean {
    return this.count >= this.maxBlocks
  }

  private word(w: number): void {
    this.h = Math.imul(this.h ^ w, FNV_PRIME)
    if (++this.inBlock === this.blockWords) {
      this.out[this.count++] = mix32(this.h)
      this.inBlock = 0
    }
  }

  char(c: number): void {
    if (this.half < 0) this.half = c
    else {
      this.word(this.half | (c << 16))
      this.half = -1
    }
  }

  text(s: string): void {
    const n = s.length
    if (n === 0) return
    let i = 0
    if (this.half >= 0) {
      this.word(this.half | (s.charCodeAt(0) << 16))
      this.half = -1
      i = 1
      if (this.full) return
    }
    let h = this.h
    let inBlock = this.inBlock
    const blockWords = this.blockWords
    for (; i + 1 < n; i += 2) {
      h = Math.imul(h ^ (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)), FNV_PRIME)
      if (++inBlock === blockWords) {
        this.out[this.count++] = mix32(h)
        inBlock = 0
        if (this.count >= this.maxBlocks) {
          this.h = h
          this.inBlock = 0
          return
        }
      }
    }
    this.h = h
    this.inBlock = inBlock
    if (i < n) this.half = s.charCodeAt(i)
  }

  content(v: unknown): void {
    if (typeof v === 'string') this.text(v)
    else if (Array.isArray(v)) {
      for (let i = 0; i < v.length && !this.full; i++) {
        const part: unknown = v[i]
        if (typeof part === 'string') this.text(part)
        else if (part !== null && typeof part === 'object') {
          const t = (part as { text?: unknown }).text
          if (typeof t === 'string') this.text(t)
        }
      }
    }
  }
}

const hasher = new Hasher()

function seedOf(model: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), FNV_PRIME)
  return h >>> 0
}

/**
 * Block hashes of a chat (`messages`), completion (`prompt`) or Responses (`input`) body, seeded
 * by the model so two models never share blocks; null when there is no full block.
 */
export function prefixBlocks(body: Record<string, unknown>, model: string, blockChars: number, maxBlocks: number): Uint32Array | null {
  const x = hasher
  x.reset(seedOf(model), blockChars, maxBlocks)
  const messages = body.messages ?? body.input
  if (Array.isArray(messages)) {
    for (let i = 0; i < messages.length && !x.full; i++) {
      const m: unknown = messages[i]
      if (m === null || typeof m !== 'object') continue
      const role = (m as { role?: unknown }).role
      if (typeof role === 'string') x.text(role)
      if (!x.full) x.char(ROLE_END)
      if (!x.full) x.content((m as { content?: unknown }).content)
      if (!x.full) x.char(MESSAGE_END)
    }
  } else if (typeof messages === 'string') {
    x.text(messages)
  } else {
    const prompt = body.prompt
    if (typeof prompt === 'string') x.text(prompt)
    else if (Array.isArray(prompt) && typeof prompt[0] === 'string') x.text(prompt[0])
  }
  return x.count === 0 ? null : x.out.slice(0, x.count)
}
