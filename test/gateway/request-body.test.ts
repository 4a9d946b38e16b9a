/**
 * The request body scanner against JSON.parse: for generated, mutated and hostile bodies it must
 * accept exactly what JSON.parse accepts (as one object within the depth limit), read the same
 * `model`, `stream` and top-level string fields, and parseBody must answer every body as the full
 * parse does (the same value, or the same error code, message and param).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../../gateway/src/errors.ts'
import { MAX_JSON_DEPTH, SCAN_MAX_BYTES, nestingExceeds, parseBody, parseObject, scansAsObject } from '../../gateway/src/proxy/request-body.ts'

/** xorshift32: the same cases on every run, so a failure names a reproducible seed and index. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x1_0000_0000
  }
}

/** What JSON.parse says of the bytes, and the depth JSON nesting reaches (valid JSON only). */
function oracle(raw: Buffer): { valid: boolean; object: boolean; value: unknown } {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'))
    return { valid: true, object: typeof value === 'object' && value !== null && !Array.isArray(value), value }
  } catch {
    return { valid: false, object: false, value: undefined }
  }
}

type Answer = { ok: true; model: string; stream: boolean; json: unknown; texts: Record<string, string | undefined> } | { ok: false; code: string; message: string; param: string | null }

function answer(parse: (raw: Buffer) => { model: string; stream: boolean; json: Record<string, unknown>; text(name: string): string | undefined }, raw: Buffer, keys: string[]): Answer {
  try {
    const parsed = parse(raw)
    const texts: Record<string, string | undefined> = {}
    // text() before json: a scanned body answers it without the parse.
    for (const key of keys) texts[key] = parsed.text(key)
    return { ok: true, model: parsed.model, stream: parsed.stream, json: parsed.json, texts }
  } catch (err) {
    assert.ok(err instanceof GatewayError, `not a GatewayError: ${String(err)}`)
    return { ok: false, code: err.code, message: err.message, param: err.param }
  }
}

const PROBED_KEYS = ['user', 'model', 'stream', 'messages', '__proto__', 'toString', 'x', '', 'é', 'mod\u0065l']

/**
 * Cases per generated test: enough for every branch of the scanner within the suite's time (each
 * case is four parses and three deep comparisons); VELOX_FUZZ_SCALE=10 runs ten times as many.
 */
const SCALE = Math.max(1, Number(process.env.VELOX_FUZZ_SCALE) || 1)
const CASES = 5_000 * SCALE

/** How many checked bodies the scanner accepted and refused: both sides must be exercised. */
const seen = { accepted: 0, refused: 0 }

function check(raw: Buffer, label: string): void {
  const expected = oracle(raw)
  const withinDepth = !(raw.length > MAX_JSON_DEPTH && nestingExceeds(raw, MAX_JSON_DEPTH))
  const scanned = scansAsObject(raw)
  seen[scanned ? 'accepted' : 'refused']++
  assert.equal(scanned, expected.valid && expected.object && withinDepth, `${label}: scanner ${scanned ? 'accepted' : 'refused'} ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`)
  const keys = expected.object ? [...PROBED_KEYS, ...Object.keys(expected.value as object)] : PROBED_KEYS
  const full = answer(parseObject, raw, keys)
  // With no field read in the scan, and with one (the probed keys in turn, and one of the body's own).
  const own = expected.object ? Object.keys(expected.value as object) : []
  for (const field of [null, PROBED_KEYS[raw.length % PROBED_KEYS.length]!, own[raw.length % Math.max(1, own.length)] ?? 'user']) {
    assert.deepEqual(answer((r) => parseBody(r, field), raw, keys), full, `${label} (field ${field}): ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`)
  }
}

const STRINGS = ['', 'a', 'bench-model', 'mod\u0065l', 'model', 'stream', 'user', 'é', '日本', '\u0000', '\n\t"\\/', '\ud800', '\udfff', '\ud83d\ude00', '\u2028', 'x'.repeat(300), '{"model":"inner"}', '[[[', '\\u0041']
const KEYS = ['model', 'stream', 'user', 'messages', 'stream_options', 'max_tokens', '__proto__', 'constructor', 'toString', '', 'é', 'x']

function generateValue(next: () => number, depth: number): unknown {
  const r = next()
  if (depth > 5 || r < 0.45) {
    const p = next()
    if (p < 0.3) return STRINGS[Math.floor(next() * STRINGS.length)]
    if (p < 0.45) return Math.floor(next() * 2000) - 1000
    if (p < 0.55) return (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20)
    if (p < 0.65) return true
    if (p < 0.75) return false
    if (p < 0.85) return null
    return String.fromCharCode(...Array.from({ length: Math.floor(next() * 8) }, () => Math.floor(next() * 0x10000)))
  }
  if (r < 0.7) return Array.from({ length: Math.floor(next() * 4) }, () => generateValue(next, depth + 1))
  return generateObject(next, depth + 1)
}

function generateObject(next: () => number, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  for (let n = Math.floor(next() * 5); n > 0; n--) Object.defineProperty(o, KEYS[Math.floor(next() * KEYS.length)]!, { value: generateValue(next, depth), enumerable: true, configurable: true, writable: true })
  return o
}

const WHITESPACE = [' ', '\t', '\n', '\r', '  ', '\r\n']

/** Serializes with random whitespace between tokens, escaped characters written as \u escapes, and repeated keys. */
function write(value: unknown, next: () => number): string {
  const ws = (): string => (next() < 0.3 ? WHITESPACE[Math.floor(next() * WHITESPACE.length)]! : '')
  const str = (s: string): string => {
    let out = JSON.stringify(s)
    if (next() < 0.2) out = out.replace(/[a-z]/, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, next() < 0.5 ? '0' : '0')}`)
    if (next() < 0.1) out = out.replace(/[a-z]/, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`)
    return out
  }
  if (typeof value === 'string') return str(value)
  if (Array.isArray(value)) return `[${ws()}${value.map((v) => write(v, next)).join(`${ws()},${ws()}`)}${ws()}]`
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).map(([k, v]) => `${str(k)}${ws()}:${ws()}${write(v, next)}`)
    // JSON.parse keeps the last of duplicate keys: repeat one with another value before it.
    if (members.length > 0 && next() < 0.2) members.unshift(`${str(Object.keys(value)[0]!)}:${write(generateValue(next, 9), next)}`)
    return `{${ws()}${members.join(`${ws()},${ws()}`)}${ws()}}`
  }
  return JSON.stringify(value) ?? 'null'
}

function generateBody(next: () => number): string {
  const body = generateObject(next, 0)
  if (next() < 0.7) body.model = next() < 0.8 ? STRINGS[Math.floor(next() * STRINGS.length)] : generateValue(next, 0)
  if (next() < 0.5) body.stream = next() < 0.8 ? next() < 0.5 : generateValue(next, 0)
  return write(body, next)
}

const MUTATION_BYTES = Buffer.from('{}[]",:\\ \t\n0123456789.eE+-tfnrulasxu\u0000\u001f\u007f')

function mutate(text: string, next: () => number): Buffer {
  const bytes = [...Buffer.from(text)]
  for (let n = 1 + Math.floor(next() * 3); n > 0; n--) {
    const at = Math.floor(next() * (bytes.length + 1))
    const op = next()
    const byte = next() < 0.9 ? MUTATION_BYTES[Math.floor(next() * MUTATION_BYTES.length)]! : Math.floor(next() * 256)
    if (op < 0.35) bytes.splice(at, 1)
    else if (op < 0.7) bytes.splice(at, 0, byte)
    else if (op < 0.9) bytes[Math.min(at, bytes.length - 1)] = byte
    else bytes.length = at
  }
  return Buffer.from(bytes)
}

test('the scanner accepts what JSON.parse accepts, and reads the same fields, for generated bodies', () => {
  const next = random(15)
  for (let i = 0; i < CASES; i++) check(Buffer.from(generateBody(next)), `generated #${i}`)
})

test('mutated bodies: the same accept or refuse, and the same error, as the full parse', () => {
  const next = random(1515)
  seen.accepted = seen.refused = 0
  for (let i = 0; i < CASES; i++) check(mutate(generateBody(next), next), `mutated #${i}`)
  assert.ok(seen.accepted > CASES / 10 && seen.refused > CASES / 10, JSON.stringify(seen))
})

test('random byte strings from the JSON alphabet', () => {
  const next = random(777)
  for (let i = 0; i < CASES; i++) {
    const length = 1 + Math.floor(next() * 24)
    const bytes = Array.from({ length }, () => MUTATION_BYTES[Math.floor(next() * MUTATION_BYTES.length)]!)
    if (next() < 0.7) bytes[0] = 0x7b
    check(Buffer.from(bytes), `random #${i}`)
  }
})

test('hostile bodies: numbers, escapes, literals, encodings, keys and depth', () => {
  const m = '"model":"m"'
  const cases: Array<string | Buffer> = [
    '{}', ' {} ', '{"model":"m"}', `{${m}}`, `\n\t\r {${m}} \n`, `{${m},}`, `{,${m}}`, `{${m}`, `{${m}}}`, `{${m}}x`, `{${m}} {}`, `{${m}};`,
    // Numbers
    ...['0', '-0', '01', '-01', '1.', '.5', '1.5', '1e5', '1E+5', '1e-5', '1e', '1e+', '-', '--1', '+1', '0x10', '1_000', 'NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '0.0000', '00', '1.2.3', '1e5e5', '9'.repeat(400)].map((n) => `{${m},"n":${n}}`),
    // Literals
    ...['true', 'false', 'null', 'tru', 'True', 'nul', 'nulll', 'undefined', 'falsey', 't'].map((v) => `{${m},"v":${v}}`),
    // Strings and escapes
    ...['"\\u0041"', '"\\u00"', '"\\u00G1"', '"\\x41"', '"\\a"', '"\\/"', '"\\\'"', '"\\"', '"\\\\"', '"\\\\\\"', "'single'", '"tab\there"', '"nl\nhere"', '"\u007f"', '"\\uD800"', '"\\uDFFF\\uD800"', '"\\u"', '"\\uFFFF"'].map((s) => `{${m},"s":${s}}`),
    // Keys
    '{"mod\\u0065l":"escaped-key"}', '{"model":"a","model":"b"}', '{"model":"a","model":1}', '{"model":1,"model":"b"}', '{"model":"a","mod\\u0065l":"b"}',
    '{"stream":"yes","model":"m"}', '{"model":"m","stream":true,"stream":1}', '{"model":"m","stream":1,"stream":null}', '{"model":"m","str\\u0065am":"x"}',
    '{"model":"m","stream":{}}', '{"model":"m","stream":[]}', '{"model":"m","stream":[true]}', '{"model":{"model":"x"}}', '{"model":["m"]}', '{"model":""}', '{"model":"\\u0000"}',
    `{"model":"${'m'.repeat(256)}"}`, `{"model":"${'m'.repeat(257)}"}`, `{"model":"${'\\u00e9'.repeat(257)}"}`, '{"__proto__":{"model":"p"}}', '{"__proto__":"u","model":"m","user":"u2"}',
    '{"model":"m","user":"a","user":{"x":1}}', '{"model":"m","user":1,"user":"last"}', '{"model":"m","us\\u0065r":"escaped"}', '{"model":"m",user:"x"}', '{"model":"m","user" "x"}', '{"model":"m","user"::"x"}', '{"model":"m",:"x"}',
    // Not objects
    '[]', '[{"model":"m"}]', '"model"', '1', 'null', 'true', '', ' ', '{', '}', '[', '{"model"', '{"model":', '{"model":"m"',
    // Comments and other JSON5 extensions
    `{${m}/*c*/}`, `{${m}//c\n}`, `{${m},"a":[1,]}`, `{${m},"a":[,1]}`, `{${m},"a":[1 2]}`, `{${m},"a":{"b"}}`, `{${m},"a":{"b":1,}}`,
    // Encodings: a BOM, bytes above 0x7f outside and inside strings, invalid UTF-8 inside strings, NUL
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`{${m}}`)]),
    Buffer.concat([Buffer.from(`{${m},"s":"`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]),
    Buffer.concat([Buffer.from('{"model":"'), Buffer.from([0xc3, 0xa9, 0xed, 0xa0, 0x80, 0xe2]), Buffer.from('"}')]),
    Buffer.concat([Buffer.from(`{${m},`), Buffer.from([0xc2, 0xa0]), Buffer.from('"a":1}')]),
    Buffer.concat([Buffer.from(`{${m}}`), Buffer.from([0x00])]),
    Buffer.from(`{${m},"a":"\u00a0\u3000"}`), `{${m}\u00a0}`, `{${m}\u2028}`, `\u000b{${m}}`, `\f{${m}}`,
    // Depth: at the limit, one past it (valid and not), unbalanced brackets inside strings
    `{${m},"a":${'['.repeat(MAX_JSON_DEPTH - 1)}${']'.repeat(MAX_JSON_DEPTH - 1)}}`,
    `{${m},"a":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`,
    `{${m},"a":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH - 1)}}`,
    `{${m},"a":${'{"b":'.repeat(MAX_JSON_DEPTH - 1)}1${'}'.repeat(MAX_JSON_DEPTH - 1)}}`,
    `{${m},"a":${'{"b":'.repeat(MAX_JSON_DEPTH)}1${'}'.repeat(MAX_JSON_DEPTH)}}`,
    `{${m},"a":"${'['.repeat(500)}"}`, `{${m},"a":${'['.repeat(20_000)}}`, `${']'.repeat(300)}{${m}}`,
  ]
  cases.forEach((c, i) => check(typeof c === 'string' ? Buffer.from(c) : c, `hostile #${i}`))
})

/** Runs `body` with JSON.parse counted: `parses()` is how many times it ran so far. */
function countingParses(body: (parses: () => number) => void): void {
  const parse = JSON.parse
  let count = 0
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    count++
    return parse(text, reviver)
  }) as typeof JSON.parse
  try {
    body(() => count)
  } finally {
    JSON.parse = parse
  }
}

test('a scanned body parses only when json is read, and then once', () => {
  const raw = Buffer.from('{"model":"m","stream":true,"user":"u","messages":[{"role":"user","content":"hi"}]}')
  countingParses((parses) => {
    const parsed = parseBody(raw, 'user')
    assert.equal(parsed.model, 'm')
    assert.equal(parsed.stream, true)
    assert.equal(parsed.text('user'), 'u')
    assert.equal(parsed.text('messages'), undefined)
    assert.equal(parses(), 0)
    assert.deepEqual(parsed.json.messages, [{ role: 'user', content: 'hi' }])
    assert.equal(parsed.json, parsed.json)
    assert.equal(parses(), 1)
  })
})

test('bodies up to SCAN_MAX_BYTES are scanned, larger ones are parsed at once', () => {
  const body = (length: number) => {
    const shell = '{"model":"m","messages":[{"role":"user","content":""}],"stream":true}'
    return Buffer.from(shell.replace('"content":""', `"content":"${'x'.repeat(length - shell.length)}"`))
  }
  countingParses((parses) => {
    for (const [length, parsed] of [[SCAN_MAX_BYTES, 0], [SCAN_MAX_BYTES + 1, 1], [512 * 1024, 1]] as const) {
      const raw = body(length)
      assert.equal(raw.length, length)
      const before = parses()
      const answer = parseBody(raw)
      assert.equal(parses() - before, parsed, `${length} bytes: ${parsed === 1 ? 'parsed at once' : 'scanned'}`)
      assert.equal(answer.model, 'm')
      assert.equal(answer.stream, true)
      assert.equal((answer.json.messages as Array<{ content: string }>)[0]!.content.length, length - 69)
      assert.equal(parses() - before, 1, 'json read once')
      assert.equal(answer.json, answer.json)
    }
  })
})

/** `text` inside a string value, `length` bytes of plain text around it, the body placed at byte `offset` of its memory. */
function longStringBody(before: number, text: Buffer, after: number, offset: number): Buffer {
  const head = Buffer.from('{"model":"m","s":"' + 'a'.repeat(before))
  const tail = Buffer.from('b'.repeat(after) + '","t":"x"}')
  const body = Buffer.concat([head, text, tail])
  const memory = Buffer.alloc(body.length + 8)
  body.copy(memory, offset)
  return memory.subarray(offset, offset + body.length)
}

test('long strings: every control character, escape and quote is judged as JSON.parse does, at every position and alignment', () => {
  // Long runs skip to the next quote or backslash and check the run four bytes at a time: each of
  // these at each position of a run (before, inside and after the first word-aligned stretch) and
  // at each alignment of the body in memory must be accepted or refused as the parse does.
  const texts = [
    ...[0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1f].map((c) => Buffer.from([c])),
    ...[0x20, 0x7f, 0x80, 0x9f, 0xa0, 0xdf, 0xe0, 0xff].map((c) => Buffer.from([c])),
    Buffer.from('\\n'), Buffer.from('\\"'), Buffer.from('\\\\'), Buffer.from('\\u00e9'), Buffer.from('\\/'),
    Buffer.from('\\x'), Buffer.from('\\u00g9'), Buffer.from('\\u12'), Buffer.from('\\'), Buffer.from('"'), Buffer.from('","u":"'),
    Buffer.from([0x5c, 0x0a]), Buffer.from([0x1f, 0x5c, 0x6e]), Buffer.from([0x5c, 0x6e, 0x00]),
  ]
  let cases = 0
  for (const text of texts) {
    for (const before of [0, 1, 3, 15, 31, 32, 33, 34, 35, 36, 47, 48, 63, 64, 65, 100]) {
      for (const after of [0, 1, 2, 3, 4, 5, 16, 40, 70]) {
        for (let offset = 0; offset < 8; offset++) {
          check(longStringBody(before, text, after, offset), `long string: ${JSON.stringify(text.toString('latin1'))} after ${before}, ${after} more, offset ${offset}`)
          cases++
        }
      }
    }
  }
  assert.ok(cases > 10_000)
})

test('long strings: many strings and escapes in one body, and a control character far from any quote', () => {
  const line = 'def f(x):\\n    return \\"value\\" + str(x)  # a line of code\\t\u00e9\\n'
  const code = Buffer.from(`{"model":"m","messages":[{"role":"user","content":"${line.repeat(400)}"},{"role":"assistant","content":"${'plain '.repeat(300)}"}]}`)
  check(code, 'escape-dense prompt')
  for (const at of [40, 5_000, code.length - 20]) {
    const broken = Buffer.from(code)
    broken[at] = 0x0a
    check(broken, `a raw newline at ${at}`)
  }
  // Long runs between escapes: each run looks again for the next backslash, past the one it met.
  for (const escape of ['\\n', '\\"', '\\u00e9', '\\\\']) {
    const runs = Buffer.from(`{"model":"m","s":"${`${'a'.repeat(40)}${escape}`.repeat(60)}","t":"${'b'.repeat(50)}"}`)
    check(runs, `long runs between ${escape}`)
    const broken = Buffer.from(runs)
    broken[runs.length - 30] = 0x09
    check(broken, `long runs between ${escape}, a tab in the last string`)
  }
  // A body of many short strings keeps finding the next quote and backslash already looked for.
  const turns = Array.from({ length: 300 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i} ${'x'.repeat(i % 70)}` }))
  check(Buffer.from(JSON.stringify({ model: 'm', messages: turns, stream: false })), 'many turns')
})

test('bad bodies keep the full parse\'s codes and messages', () => {
  const code = (body: string): [string, string] => {
    try {
      parseBody(Buffer.from(body))
    } catch (err) {
      assert.ok(err instanceof GatewayError)
      return [err.code, err.message]
    }
    return ['', '']
  }
  assert.equal(code('{"model":"m",}')[0], 'GW_ERR_INVALID_JSON')
  assert.match(code('{"model":"m",}')[1], /JSON/)
  assert.equal(code('[1]')[0], 'GW_ERR_INVALID_BODY')
  assert.match(code('[1]')[1], /expected a JSON object/)
  assert.equal(code('{"stream":true}')[0], 'GW_ERR_MODEL_REQUIRED')
  assert.equal(code('{"model":"m","stream":"true"}')[0], 'GW_ERR_INVALID_BODY')
  assert.match(code('{"model":"m","stream":"true"}')[1], /"stream" must be a boolean/)
  assert.equal(code(`{"model":"m","a":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`)[0], 'GW_ERR_INVALID_BODY')
})
