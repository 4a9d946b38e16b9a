/**
 * Reads the few fields routing needs from a request body. The bytes themselves are forwarded
 * unchanged; this parse exists to route, count and cache, never to rebuild the request.
 */
import { GatewayError } from '../errors.ts'

/**
 * Deepest nesting of objects and arrays a body may have. Real requests (messages, content parts,
 * tool schemas) stay far below it; beyond it every later walk (cache key, alias rewrite,
 * translation) would risk the stack, and parsing itself gets slow, so it is refused before parsing.
 */
export const MAX_JSON_DEPTH = 128
/**
 * Longest `model` accepted. Model ids are short (Hugging Face caps them at 96 characters); the
 * name keys routing, cache and metric state, so a client must not be able to make it large.
 */
export const MAX_MODEL_LENGTH = 256

export interface ParsedBody {
  /** The whole body as an object; a scanned body parses it on first use, so read it only where a feature needs more than the fields below. */
  readonly json: Record<string, unknown>
  readonly model: string
  readonly stream: boolean
  /** A top-level field's value when it is a string (what `json[name]` holds), else undefined. */
  text(name: string): string | undefined
}

/**
 * Bodies up to this size are scanned; larger ones are parsed at once. Below it the scan is cheaper
 * than the parse (docs/benchmarks.md, "The request-intake pass"). Above it the scan is still
 * faster by itself (a long prompt in about a sixth of the parse's time, gateway/benchmarks/micro/
 * request-body.ts), but it leaves nothing on the JS heap: the request's Buffers (node:http's copy
 * of each read, and the body put together from them) are then reclaimed only when V8's global
 * limit starts a full mark-compact, every ~19 requests of 512 KB, whose marking steps land on
 * requests (p90 8 against 4.7 ms). The parse's short-lived strings keep V8 scavenging, which
 * reclaims those Buffers young ("Large bodies and the external-memory GC").
 */
export const SCAN_MAX_BYTES = 2048

/**
 * Checks the body and reads `model` and `stream` from it (bodies over SCAN_MAX_BYTES: parsed). A
 * body the byte scanner below proves to be one JSON object (what JSON.parse would accept, no deeper
 * than MAX_JSON_DEPTH) is not parsed:
 * its two fields are read in place, and the rest only if a feature asks for `json`. Anything else
 * (invalid JSON, too deep, not an object) takes the full parse, whose errors are the client's answer.
 * `field`: a top-level key whose string value is read in the same pass, for `text(field)` (the
 * affinity body field); other names take a second pass.
 */
export function parseBody(raw: Buffer, field: string | null = null): ParsedBody {
  if (raw.length > SCAN_MAX_BYTES) return parseObject(raw)
  const wanted = field === null || field === 'model' || field === 'stream' ? null : keyBytes(field)
  if (!scanObject(raw, wanted)) return parseObject(raw)
  if (modelSlot.kind !== STRING) throw new GatewayError('GW_ERR_MODEL_REQUIRED', undefined, { param: 'model' })
  const model = slotString(raw, modelSlot)
  if (model.length === 0) throw new GatewayError('GW_ERR_MODEL_REQUIRED', undefined, { param: 'model' })
  if (model.length > MAX_MODEL_LENGTH) throw new GatewayError('GW_ERR_INVALID_BODY', `"model" is longer than ${MAX_MODEL_LENGTH} characters`, { param: 'model' })
  const stream = streamSlot.kind
  if (stream !== ABSENT && stream !== NULL && stream !== TRUE && stream !== FALSE) {
    throw new GatewayError('GW_ERR_INVALID_BODY', '"stream" must be a boolean', { param: 'stream' })
  }
  return new ScannedBody(raw, model, stream === TRUE, wanted === null ? null : field, wantedSlot.kind === STRING ? slotString(raw, wantedSlot) : undefined)
}

/** A body already parsed (or built, as a translation is): every field read from the object. */
export class ObjectBody implements ParsedBody {
  readonly json: Record<string, unknown>
  readonly model: string
  readonly stream: boolean
  constructor(json: Record<string, unknown>, model: string, stream: boolean) {
    this.json = json
    this.model = model
    this.stream = stream
  }
  text(name: string): string | undefined {
    const value = this.json[name]
    return typeof value === 'string' ? value : undefined
  }
}

/** A body the scanner proved valid: the object is built only when something reads `json`. */
class ScannedBody implements ParsedBody {
  readonly model: string
  readonly stream: boolean
  readonly #raw: Buffer
  #json: Record<string, unknown> | null
  /** The key read with the scan, and its string value (undefined: absent or not a string). */
  readonly #field: string | null
  readonly #fieldText: string | undefined
  constructor(raw: Buffer, model: string, stream: boolean, field: string | null, fieldText: string | undefined) {
    this.model = model
    this.stream = stream
    this.#raw = raw
    this.#json = null
    this.#field = field
    this.#fieldText = fieldText
  }
  get json(): Record<string, unknown> {
    return (this.#json ??= JSON.parse(this.#raw.toString('utf8')) as Record<string, unknown>)
  }
  text(name: string): string | undefined {
    if (name === this.#field) return this.#fieldText
    // `model` is the string read; `stream` is never one (refused unless a boolean or null).
    if (name === 'model') return this.model
    if (name === 'stream') return undefined
    if (this.#json !== null) {
      const value = this.#json[name]
      return typeof value === 'string' ? value : undefined
    }
    scanObject(this.#raw, keyBytes(name))
    return wantedSlot.kind === STRING ? slotString(this.#raw, wantedSlot) : undefined
  }
}

/**
 * A committed call's body once let go (`RELEASED_BODY`): the bytes and the parsed object are gone
 * so that a long answer does not hold its prompt. Reading it is a bug, and fails loudly rather
 * than answering as if the body had no such field; what the call reads after committing (model,
 * stream) it keeps itself.
 */
class ReleasedBody implements ParsedBody {
  get model(): string {
    throw new Error('the request body was released when the call committed (read of "model")')
  }
  get stream(): boolean {
    throw new Error('the request body was released when the call committed (read of "stream")')
  }
  get json(): Record<string, unknown> {
    throw new Error('the request body was released when the call committed')
  }
  text(name: string): string | undefined {
    throw new Error(`the request body was released when the call committed (read of "${name}")`)
  }
}

/** Every released body: one object, shared, since it holds nothing. */
export const RELEASED_BODY: ParsedBody = new ReleasedBody()

/** The full parse: what every body took before the scanner, and what a body it cannot vouch for still takes. */
export function parseObject(raw: Buffer): ObjectBody {
  if (raw.length > MAX_JSON_DEPTH && nestingExceeds(raw, MAX_JSON_DEPTH)) {
    throw new GatewayError('GW_ERR_INVALID_BODY', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`)
  }
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    throw new GatewayError('GW_ERR_INVALID_JSON', (err as Error).message)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new GatewayError('GW_ERR_INVALID_BODY', 'expected a JSON object')
  }
  const body = json as Record<string, unknown>
  const model = body.model
  if (typeof model !== 'string' || model.length === 0) throw new GatewayError('GW_ERR_MODEL_REQUIRED', undefined, { param: 'model' })
  if (model.length > MAX_MODEL_LENGTH) throw new GatewayError('GW_ERR_INVALID_BODY', `"model" is longer than ${MAX_MODEL_LENGTH} characters`, { param: 'model' })
  const stream = body.stream
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw new GatewayError('GW_ERR_INVALID_BODY', '"stream" must be a boolean', { param: 'stream' })
  }
  return new ObjectBody(body, model, stream === true)
}

const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * True when objects and arrays in `raw` nest deeper than `limit`, counting brackets outside
 * strings. One pass over the bytes; string contents are skipped with indexOf. Runs before
 * JSON.parse, so invalid JSON may be refused for its depth rather than its syntax.
 */
export function nestingExceeds(raw: Uint8Array, limit: number): boolean {
  const n = raw.length
  let depth = 0
  for (let i = 0; i < n; i++) {
    const c = raw[i]!
    if (c === QUOTE) {
      // Find the closing quote: one preceded by an even number of backslashes.
      for (;;) {
        const q = raw.indexOf(QUOTE, i + 1)
        if (q === -1) return false
        let slashes = 0
        while (raw[q - 1 - slashes] === BACKSLASH) slashes++
        i = q
        if ((slashes & 1) === 0) break
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return false
}

// The byte scanner. It accepts exactly what JSON.parse accepts of a UTF-8 body (bytes of 0x80 and
// above pass inside strings as they do through the decoder, which makes U+FFFD of invalid ones, and
// are refused outside them), allocates nothing for a body without escaped keys, and remembers, for
// the last occurrence of `model`, `stream` and one wanted top-level key, what kind of value it has
// and where a string value lies. Duplicate keys: the last one wins, as in JSON.parse.

const ABSENT = 0
const STRING = 1
const NUMBER = 2
const TRUE = 3
const FALSE = 4
const NULL = 5
const OBJECT = 6
const ARRAY = 7

/** Where one top-level value was found by the last scan. */
interface Slot {
  kind: number
  /** The string's contents, quotes excluded (STRING only). */
  start: number
  end: number
  /** The string holds escapes: decoded by JSON.parse, not sliced. */
  escaped: boolean
}
const modelSlot: Slot = { kind: ABSENT, start: 0, end: 0, escaped: false }
const streamSlot: Slot = { kind: ABSENT, start: 0, end: 0, escaped: false }
const wantedSlot: Slot = { kind: ABSENT, start: 0, end: 0, escaped: false }
const MODEL_KEY = Buffer.from('model')
const STREAM_KEY = Buffer.from('stream')

function slotString(raw: Buffer, slot: Slot): string {
  return slot.escaped ? (JSON.parse(raw.toString('utf8', slot.start - 1, slot.end + 1)) as string) : raw.toString('utf8', slot.start, slot.end)
}

let lastKeyName = ''
let lastKeyBytes = Buffer.alloc(0)
let lastKeyAscii = true
/** The wanted key's bytes; one name is asked for per config (`routing.hashKey.bodyField`), so one is kept. */
function keyBytes(name: string): Buffer {
  if (name !== lastKeyName) {
    lastKeyBytes = Buffer.from(name)
    lastKeyName = name
    lastKeyAscii = lastKeyBytes.length === name.length
  }
  return lastKeyBytes
}

/** Per byte: 1 for a JSON whitespace byte. */
const WHITESPACE = new Uint8Array(256)
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WHITESPACE[c] = 1
/** Per byte: 1 where a string's plain run stops (quote, backslash, control characters). */
const STRING_STOP = new Uint8Array(256)
for (let c = 0; c < 0x20; c++) STRING_STOP[c] = 1
STRING_STOP[QUOTE] = 1
STRING_STOP[BACKSLASH] = 1
/** Per byte: 1 for a hex digit. */
const HEX = new Uint8Array(256)
for (const c of Buffer.from('0123456789abcdefABCDEF')) HEX[c] = 1
/** Per byte: 1 for the letters that may follow a backslash other than `u`. */
const SIMPLE_ESCAPE = new Uint8Array(256)
for (const c of Buffer.from('"\\/bfnrt')) SIMPLE_ESCAPE[c] = 1
/** Open containers by depth: 1 for an object, 0 for an array. */
const OPEN = new Uint8Array(MAX_JSON_DEPTH + 2)

/** Set by stringEnd: the string it ended held a backslash. */
let stringEscaped = false

/**
 * After this many plain bytes in a row inside a string, the rest of the run is skipped at once
 * rather than byte by byte: keys, short values and text dense with escapes stay in the byte loop,
 * and a long prompt is one long run.
 */
const LONG_RUN = 32
/** Runs at least this long are checked for control characters four bytes at a time. */
const WORD_RUN = 16

// What runEnd knows during one scan (positions only move forward within it): the first quote and
// the first backslash at or after some earlier position (-1: not looked for yet, the length: none
// left), and the body's memory as 32-bit words. All of it is dropped when the scan ends.
let quoteAt = -1
let backslashAt = -1
let words: Uint32Array | null = null

/** The index of the quote closing the string whose contents start at `i`, or -1 when it is not a valid JSON string. */
function stringEnd(raw: Buffer, i: number): number {
  const n = raw.length
  stringEscaped = false
  for (;;) {
    const limit = i + LONG_RUN < n ? i + LONG_RUN : n
    while (i < limit && STRING_STOP[raw[i]!] === 0) i++
    if (i === n) return -1
    if (i === limit) {
      // LONG_RUN plain bytes in a row: the rest of the run at once.
      i = runEnd(raw, i)
      if (i === -1) return -1
    }
    if (raw[i] === QUOTE) return i
    i = escapeEnd(raw, i)
    if (i === -1) return -1
  }
}

/** After the backslash at `i`: the index past its escape, or -1 when it is not a valid one. Marks the string escaped. */
function escapeEnd(raw: Buffer, i: number): number {
  const n = raw.length
  if (raw[i] !== BACKSLASH || i + 1 >= n) return -1
  stringEscaped = true
  const e = raw[i + 1]!
  if (SIMPLE_ESCAPE[e] === 1) return i + 2
  if (e === 0x75 && i + 5 < n && HEX[raw[i + 2]!] === 1 && HEX[raw[i + 3]!] === 1 && HEX[raw[i + 4]!] === 1 && HEX[raw[i + 5]!] === 1) return i + 6
  return -1
}

/**
 * The end of the plain run inside a string from `i`: the index of the next quote or backslash, or
 * -1 when a control character comes first or the body ends. Both are found with indexOf (memchr)
 * and looked for again only once the scan has passed them, so a body costs no more calls than it
 * has strings and escapes; the run itself is checked a word at a time. On one long prompt this is
 * about a seventh of the byte loop's time.
 */
function runEnd(raw: Buffer, i: number): number {
  if (quoteAt < i) quoteAt = indexAt(raw, QUOTE, i)
  if (backslashAt < i) backslashAt = indexAt(raw, BACKSLASH, i)
  const stop = quoteAt < backslashAt ? quoteAt : backslashAt
  return stop === raw.length || hasControl(raw, i, stop) ? -1 : stop
}

/** The first index of `byte` at or after `from`, or the length when there is none. */
function indexAt(raw: Buffer, byte: number, from: number): number {
  const at = raw.indexOf(byte, from)
  return at === -1 ? raw.length : at
}

/**
 * True when a byte below 0x20 lies in raw[from, to). Long runs are read as 32-bit words: a word
 * holds such a byte exactly when (x - 0x20202020) & ~x & 0x80808080 is not zero (no byte below
 * 0x20 borrows, and bytes of 0x80 and above are masked out).
 */
function hasControl(raw: Buffer, from: number, to: number): boolean {
  let k = from
  if (to - from >= WORD_RUN) {
    const base = raw.byteOffset
    while (((base + k) & 3) !== 0) {
      if (raw[k]! < 0x20) return true
      k++
    }
    const view = (words ??= new Uint32Array(raw.buffer, 0, raw.buffer.byteLength >>> 2))
    const last = (base + to) >>> 2
    for (let w = (base + k) >>> 2; w < last; w++) {
      const x = view[w]!
      if (((x - 0x20202020) & ~x & 0x80808080) !== 0) return true
    }
    k = (last << 2) - base
  }
  for (; k < to; k++) if (raw[k]! < 0x20) return true
  return false
}

function isDigit(raw: Uint8Array, i: number): boolean {
  if (i >= raw.length) return false
  const c = raw[i]!
  return c >= 0x30 && c <= 0x39
}

/** The index after the number starting at `i`, or -1 when no valid JSON number starts there. */
function numberEnd(raw: Uint8Array, i: number): number {
  if (raw[i] === 0x2d) i++ // '-'
  if (i >= raw.length) return -1
  if (raw[i] === 0x30) i++
  else if (isDigit(raw, i)) while (isDigit(raw, ++i));
  else return -1
  if (i < raw.length && raw[i] === 0x2e) {
    if (!isDigit(raw, ++i)) return -1
    while (isDigit(raw, ++i));
  }
  if (i < raw.length && (raw[i] === 0x65 || raw[i] === 0x45)) {
    i++
    if (i < raw.length && (raw[i] === 0x2b || raw[i] === 0x2d)) i++
    if (!isDigit(raw, i)) return -1
    while (isDigit(raw, ++i));
  }
  return i
}

function matches(raw: Uint8Array, i: number, word: Uint8Array): boolean {
  if (i + word.length > raw.length) return false
  for (let k = 0; k < word.length; k++) if (raw[i + k] !== word[k]) return false
  return true
}
const TRUE_WORD = Buffer.from('true')
const FALSE_WORD = Buffer.from('false')
const NULL_WORD = Buffer.from('null')

function skipWhitespace(raw: Uint8Array, i: number): number {
  while (i < raw.length && WHITESPACE[raw[i]!] === 1) i++
  return i
}

/** Which slot a top-level key's value goes to (null: none), for the key whose contents are raw[start, end). `wanted` is never `model` or `stream`. */
function slotOf(raw: Buffer, start: number, end: number, escaped: boolean, wanted: Uint8Array | null): Slot | null {
  if (escaped) {
    const key = JSON.parse(raw.toString('utf8', start - 1, end + 1)) as string
    if (key === 'model') return modelSlot
    if (key === 'stream') return streamSlot
    return wanted !== null && key === lastKeyName ? wantedSlot : null
  }
  const length = end - start
  if (length === 5 && matches(raw, start, MODEL_KEY)) return modelSlot
  if (length === 6 && matches(raw, start, STREAM_KEY)) return streamSlot
  if (wanted === null) return null
  if (length === wanted.length && matches(raw, start, wanted)) return wantedSlot
  // Other bytes may decode to the same name (invalid UTF-8 becomes U+FFFD); only non-ASCII names can be met so.
  return !lastKeyAscii && raw.toString('utf8', start, end) === lastKeyName ? wantedSlot : null
}

/**
 * True when `raw` is one JSON object that JSON.parse would accept, nested no deeper than
 * MAX_JSON_DEPTH; the slots then hold what its top-level `model`, `stream` and `wanted` keys
 * (the last of each) are. False when it is anything else, or the scanner cannot tell.
 */
function scanObject(raw: Buffer, wanted: Uint8Array | null): boolean {
  quoteAt = backslashAt = -1
  try {
    return scanValue(raw, wanted)
  } finally {
    words = null
  }
}

function scanValue(raw: Buffer, wanted: Uint8Array | null): boolean {
  modelSlot.kind = ABSENT
  streamSlot.kind = ABSENT
  wantedSlot.kind = ABSENT
  const n = raw.length
  let i = skipWhitespace(raw, 0)
  if (i >= n || raw[i] !== 0x7b) return false
  let depth = 0
  /** The slot of the top-level key whose value is being read, or null. */
  let slot: Slot | null = null
  for (;;) {
    // A value starts at or after i.
    i = skipWhitespace(raw, i)
    if (i >= n) return false
    const c = raw[i]!
    let kind: number
    if (c === QUOTE) {
      const end = stringEnd(raw, i + 1)
      if (end === -1) return false
      if (depth === 1 && slot !== null) {
        slot.start = i + 1
        slot.end = end
        slot.escaped = stringEscaped
      }
      i = end + 1
      kind = STRING
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) return false
      const isObject = c === 0x7b
      OPEN[depth] = isObject ? 1 : 0
      i = skipWhitespace(raw, i + 1)
      if (i >= n) return false
      if (raw[i] !== (isObject ? 0x7d : 0x5d)) {
        if (!isObject) continue // the array's first element
        i = keyEnd(raw, i, depth === 1, wanted)
        if (i === -1) return false
        if (depth === 1) slot = keySlot
        continue // the object's first value
      }
      // An empty container: closed below like any other.
      kind = ABSENT
    } else if (c === 0x74) {
      if (!matches(raw, i, TRUE_WORD)) return false
      i += 4
      kind = TRUE
    } else if (c === 0x66) {
      if (!matches(raw, i, FALSE_WORD)) return false
      i += 5
      kind = FALSE
    } else if (c === 0x6e) {
      if (!matches(raw, i, NULL_WORD)) return false
      i += 4
      kind = NULL
    } else {
      i = numberEnd(raw, i)
      if (i === -1) return false
      kind = NUMBER
    }
    if (kind !== ABSENT) {
      if (depth === 1 && slot !== null) slot.kind = kind
    } else {
      // The empty container at `depth` closes now.
      i++
      if (--depth === 0) return skipWhitespace(raw, i) === n
      if (depth === 1 && slot !== null) slot.kind = OPEN[2] === 1 ? OBJECT : ARRAY
    }
    // After a value: a comma and the next member or element, or the container's end.
    for (;;) {
      i = skipWhitespace(raw, i)
      if (i >= n) return false
      const d = raw[i]!
      const inObject = OPEN[depth] === 1
      if (d === 0x2c) {
        i++
        if (inObject) {
          i = keyEnd(raw, skipWhitespace(raw, i), depth === 1, wanted)
          if (i === -1) return false
          if (depth === 1) slot = keySlot
        }
        break
      }
      if (d !== (inObject ? 0x7d : 0x5d)) return false
      i++
      if (--depth === 0) return skipWhitespace(raw, i) === n
      if (depth === 1 && slot !== null) slot.kind = OPEN[2] === 1 ? OBJECT : ARRAY
    }
  }
}

/** Set by keyEnd for a top-level key: the slot its value goes to. */
let keySlot: Slot | null = null

/** Reads `"key" :` from `i`; the index after the colon, or -1. For a top-level key, sets keySlot. */
function keyEnd(raw: Buffer, i: number, topLevel: boolean, wanted: Uint8Array | null): number {
  if (i >= raw.length || raw[i] !== QUOTE) return -1
  const end = stringEnd(raw, i + 1)
  if (end === -1) return -1
  if (topLevel) keySlot = slotOf(raw, i + 1, end, stringEscaped, wanted)
  i = skipWhitespace(raw, end + 1)
  if (i >= raw.length || raw[i] !== 0x3a) return -1
  return i + 1
}

/** Returns the body bytes with `model` replaced (an alias resolved to the upstream's model id). */
export function rewriteModel(body: Record<string, unknown>, model: string): Buffer {
  return Buffer.from(JSON.stringify({ ...body, model }))
}

/** True when the scanner vouches for `raw` (one valid JSON object within the depth limit): its body will not be parsed unless asked. */
export function scansAsObject(raw: Buffer): boolean {
  return scanObject(raw, null)
}
