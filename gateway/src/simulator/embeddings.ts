/**
 * `POST /v1/embeddings`. A vector is the normalised sum of one pseudo-random vector per word
 * (lower-cased) plus a smaller one for the exact text. So the same input always gives the same
 * vector, texts sharing most words score a high cosine (useful for semantic-cache tests), unrelated
 * texts score near zero, and `dimensions: k` is the normalised prefix of the full vector, as with
 * OpenAI's shortened embeddings.
 */

import { type GenConfig, type Reply, invalidRequest, json, readModel } from './reply.ts'
import { hashInt, hashString, mix } from './text.ts'

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193
/** Weight of the exact-text vector relative to the words: reordered words keep cosine ~0.94. */
const EXACT_WEIGHT = 0.25
const MAX_DIMENSIONS = 65_536

/** Adds a unit-scale pseudo-random vector (values in [-1, 1)) derived from `seed`. */
function addNoise(acc: Float64Array, seed: number, weight: number): void {
  let s = seed | 0
  const scale = weight / 2_147_483_648
  for (let i = 0; i < acc.length; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    acc[i]! += s * scale
  }
}

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || c > 127
}

function embedText(text: string, dim: number, modelHash: number): Float64Array {
  const acc = new Float64Array(dim)
  let words = 0
  let h = FNV_OFFSET
  let inWord = false
  for (let i = 0; i <= text.length; i++) {
    let c = i < text.length ? text.charCodeAt(i) : 32
    if (c >= 65 && c <= 90) c |= 0x20
    if (isWordChar(c)) {
      h = Math.imul(h ^ c, FNV_PRIME)
      inWord = true
    } else if (inWord) {
      addNoise(acc, mix(h ^ modelHash), 1)
      words++
      h = FNV_OFFSET
      inWord = false
    }
  }
  addNoise(acc, mix(hashString(modelHash, text)), EXACT_WEIGHT * Math.sqrt(words || 1))
  return acc
}

function embedTokens(ids: readonly unknown[], dim: number, modelHash: number): Float64Array {
  const acc = new Float64Array(dim)
  let whole = modelHash
  for (const id of ids) {
    const n = Number(id) | 0
    addNoise(acc, mix(hashInt(modelHash, n)), 1)
    whole = hashInt(whole, n)
  }
  addNoise(acc, mix(whole ^ 0x5bd1e995), EXACT_WEIGHT * Math.sqrt(ids.length || 1))
  return acc
}

function normalise(acc: Float64Array): Float32Array {
  let sum = 0
  for (let i = 0; i < acc.length; i++) sum += acc[i]! * acc[i]!
  const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0
  const out = new Float32Array(acc.length)
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]! * inv
  return out
}

function splitInputs(input: unknown): unknown[] | null {
  if (typeof input === 'string') return [input]
  if (!Array.isArray(input) || input.length === 0) return null
  if (typeof input[0] === 'number') return [input]
  for (const item of input) {
    if (typeof item !== 'string' && !(Array.isArray(item) && item.length > 0)) return null
  }
  return input
}

export function embeddings(body: Record<string, unknown>, cfg: GenConfig): Reply {
  const model = readModel(body)
  if (typeof model !== 'string') return model
  const inputs = splitInputs(body.input)
  if (inputs === null) {
    return invalidRequest("'input' must be a string, an array of strings, or an array of token arrays", 'input')
  }
  let dim = cfg.embeddingDim
  if (body.dimensions !== undefined && body.dimensions !== null) {
    if (!Number.isInteger(body.dimensions) || (body.dimensions as number) < 1 || (body.dimensions as number) > MAX_DIMENSIONS) {
      return invalidRequest(`dimensions must be an integer between 1 and ${MAX_DIMENSIONS}`, 'dimensions')
    }
    dim = body.dimensions as number
  }
  const format = body.encoding_format ?? 'float'
  if (format !== 'float' && format !== 'base64') {
    return invalidRequest("encoding_format must be 'float' or 'base64'", 'encoding_format')
  }

  const modelHash = hashString(FNV_OFFSET, model)
  let data = ''
  let promptTokens = 0
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]
    let vector: Float32Array
    if (typeof input === 'string') {
      vector = normalise(embedText(input, dim, modelHash))
      promptTokens += Math.ceil(input.length / 4)
    } else {
      vector = normalise(embedTokens(input as unknown[], dim, modelHash))
      promptTokens += (input as unknown[]).length
    }
    const encoded = format === 'base64'
      ? '"' + Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64') + '"'
      : '[' + vector.join(',') + ']'
    data += (i === 0 ? '{"object":"embedding","index":' : ',{"object":"embedding","index":') + i + ',"embedding":' + encoded + '}'
  }
  return json(200, '{"object":"list","data":[' + data + '],"model":' + model +
    ',"usage":{"prompt_tokens":' + promptTokens + ',"total_tokens":' + promptTokens + '}}')
}
