/**
 * The fuzzer's request generator: methods x paths, headers, bodies and framing, each case a raw
 * byte sequence for one connection plus what a correct server must do with it (how many answers,
 * how long it may take). Everything is drawn from a seeded Rng, so a failing case replays by seed
 * and index.
 */
import type { Rng } from './rng.ts'

export interface FuzzCase {
  family: string
  /** Short description for the report. */
  what: string
  pieces: Array<Buffer | string | number>
  /** Answers the server owes (pipelined requests owe several). */
  expect: number
  head: boolean
  /** Statuses the first answer must have, when the HTTP rules fix it (two Host headers: 400). */
  statuses?: readonly number[]
}

const ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses']
const PATHS = [
  ...ENDPOINTS, '/v1/models', '/v1/models/velox-sim-1', '/v1/models/a/b', '/v1/models/', '/healthz', '/readyz', '/metrics',
  '/', '/v1', '/v2/chat/completions', '/v1/chat/completions/', '//v1/chat/completions', '/v1/chat/completions?x=1&y',
  '/v1/../v1/chat/completions', '/v1/%63hat/completions', '/v1/models/%zz', '/v1/%', '/%E0%A4%A', '/v1/models/%00', '/v1/models/%2F%2F',
  '/_sim/faults', '/v1/chat/completions#frag', '/v1/chat%2Fcompletions', '*', 'http://127.0.0.1/v1/models', '/v1/models/' + 'a'.repeat(4000),
]
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'get', 'PROPFIND', 'M-SEARCH', 'POST ', 'CONNECT']
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', '', 'application/vnd.api+json', 'application/json;;;', 'image/png', '*/*']

function chat(rng: Rng, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: rng.pick(['velox-sim-1', 'm', 'any/model-name']), messages: [{ role: 'user', content: rng.text(1 + rng.int(40)) }], stream: rng.chance(0.3), ...extra }
}

function weirdValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 6 : 9)) {
    case 0: return null
    case 1: return rng.chance(0.5)
    case 2: return rng.pick([0, -1, 1e308, -1e-308, 2 ** 53 + 1, 0.1])
    case 3: return rng.text(rng.int(30))
    case 4: return rng.pick(['', '\u0000', '\ud800', '😀'.repeat(10), '\u202e', 'a'.repeat(5_000)])
    case 5: return []
    case 6: return Array.from({ length: rng.int(4) }, () => weirdValue(rng, depth + 1))
    case 7: return Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.pick(['model', 'stream', 'messages', '__proto__', 'constructor', rng.text(5)]), weirdValue(rng, depth + 1)]))
    default: return { role: rng.pick(['user', 'system', 'tool', 'x']), content: weirdValue(rng, depth + 1) }
  }
}

/** A body for POST endpoints, valid or broken in one of many ways. */
function body(rng: Rng): Buffer {
  switch (rng.int(16)) {
    case 0: return Buffer.from(JSON.stringify(chat(rng)))
    case 1: return Buffer.from(JSON.stringify(chat(rng, { model: weirdValue(rng) })))
    case 2: return Buffer.from(JSON.stringify(chat(rng, { stream: weirdValue(rng) })))
    case 3: return Buffer.from(JSON.stringify(chat(rng, { messages: weirdValue(rng) })))
    case 4: {
      const d = rng.pick([100, 129, 1_000, 50_000])
      return Buffer.from(`{"model":"m","messages":${'['.repeat(d)}${']'.repeat(d)}}`)
    }
    case 5: return Buffer.from(JSON.stringify(chat(rng, { model: 'm'.repeat(rng.pick([255, 257, 10_000, 100_000])) })))
    case 6: return Buffer.from(JSON.stringify(chat(rng)).slice(0, rng.int(40)))
    case 7: return rng.bytes(rng.int(200))
    case 8: return Buffer.from(JSON.stringify(weirdValue(rng)) ?? 'null')
    case 9: return Buffer.concat([Buffer.from('{"model":"m","messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from('"}]}')])
    case 10: return Buffer.from('\ufeff' + JSON.stringify(chat(rng)))
    case 11: return Buffer.from('{"model":"m","model":"n","stream":true,"stream":false,"messages":[]}')
    case 12: return Buffer.from(JSON.stringify(chat(rng, { n: rng.pick([0, 1, 3, -1]), max_tokens: rng.pick([0, 1, 1e9, -5]), temperature: weirdValue(rng), stream_options: weirdValue(rng) })))
    case 13: return Buffer.from(JSON.stringify({ model: 'velox-sim-1', input: weirdValue(rng), prompt: weirdValue(rng) }))
    case 14: return Buffer.from('')
    default: return Buffer.from(JSON.stringify(chat(rng, { [rng.text(8)]: weirdValue(rng), user: weirdValue(rng), metadata: weirdValue(rng) })))
  }
}

function headerBlock(lines: string[]): string {
  return lines.join('\r\n') + '\r\n\r\n'
}

/** One well-formed request with a body of exactly its length. */
function request(method: string, path: string, headers: string[], payload: Buffer | null, close = true): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, ...headers]
  if (payload !== null) lines.push(`content-length: ${payload.length}`)
  if (close) lines.push('connection: close')
  const head = Buffer.from(headerBlock(lines), 'latin1')
  return payload === null ? head : Buffer.concat([head, payload])
}

const HOST = 'host: 127.0.0.1'

export function generate(rng: Rng, index: number): FuzzCase {
  const family = rng.pick(['methods-paths', 'methods-paths', 'headers', 'bodies', 'bodies', 'bodies', 'framing'])
  const n = `#${index}`
  if (family === 'methods-paths') {
    const method = rng.pick(METHODS)
    const path = method === 'CONNECT' ? rng.pick(['127.0.0.1:443', 'example.com:80', '/v1/models']) : rng.pick(PATHS)
    const payload = method === 'POST' || rng.chance(0.2) ? body(rng) : null
    // A gateway is no forward proxy: CONNECT is refused, with an answer.
    const statuses = method === 'CONNECT' ? [405, 400] : undefined
    return { family, what: `${n} ${method} ${path.slice(0, 60)}`, pieces: [request(method, path, [HOST, 'content-type: application/json'], payload)], expect: 1, head: method === 'HEAD', ...(statuses ? { statuses } : {}) }
  }
  if (family === 'headers') {
    const headers: string[] = []
    const variant = rng.int(14)
    const what: string[] = []
    if (variant !== 0) headers.push(HOST)
    else what.push('no Host')
    switch (variant) {
      case 1: headers.push('host: 127.0.0.2'); what.push('two Host'); break
      case 2: headers.push(`expect: ${rng.pick(['100-continue', '200-ok', '100-Continue', 'x', ''])}`); what.push('Expect'); break
      case 3: headers.push(`authorization: ${rng.pick(['Bearer x', 'bearer', 'Basic Zm9vOmJhcg==', 'Bearer ' + 'k'.repeat(10_000), ''])}`); what.push('authorization'); break
      case 4: headers.push(`x-big: ${'b'.repeat(rng.pick([1_000, 15_000, 17_000, 64_000]))}`); what.push('big header'); break
      case 5: for (let i = 0; i < rng.pick([50, 500, 2_000]); i++) headers.push(`x-h${i}: v`); what.push('many headers'); break
      case 6: headers.push(`x-request-id: ${rng.pick(['', 'a'.repeat(5_000), '../../etc', '\t'])}`); what.push('x-request-id'); break
      case 7: headers.push('content-encoding: gzip'); what.push('gzip'); break
      case 8: headers.push(`bad header: x`); what.push('space in name'); break
      case 9: headers.push(`x-fold: a\r\n b`); what.push('obs-fold'); break
      case 10: headers.push(`x-nul: a\u0000b`); what.push('NUL'); break
      case 11: headers.push(`content-type: ${rng.pick(CONTENT_TYPES)}`, `content-type: ${rng.pick(CONTENT_TYPES)}`); what.push('two content-types'); break
      case 12: headers.push(`x-session-id: ${rng.text(20)}`, `openai-beta: ${rng.text(10)}`); what.push('forwarded headers'); break
      default: headers.push('accept-encoding: gzip, br', `te: ${rng.pick(['trailers', 'gzip'])}`); what.push('encodings'); break
    }
    if (variant !== 11) headers.push(`content-type: ${rng.pick(CONTENT_TYPES)}`)
    const path = rng.pick(ENDPOINTS)
    const expect = headers.find((h) => h.startsWith('expect: '))?.slice(8)
    // RFC 9112 3.2: no Host, or more than one, is a 400; RFC 9110 10.1.1: an Expect the server cannot meet is a 417.
    const statuses = variant <= 1 ? [400] : expect !== undefined && expect.toLowerCase() !== '100-continue' ? [417] : undefined
    return { family, what: `${n} ${what.join(',')} ${path}`, pieces: [request('POST', path, headers, body(rng))], expect: 1, head: false, ...(statuses ? { statuses } : {}) }
  }
  if (family === 'bodies') {
    const path = rng.pick([...ENDPOINTS, ...ENDPOINTS, '/v1/chat/completions'])
    const payload = body(rng)
    return { family, what: `${n} body ${payload.length}B ${path}`, pieces: [request('POST', path, [HOST, `content-type: ${rng.chance(0.8) ? 'application/json' : rng.pick(CONTENT_TYPES)}`], payload)], expect: 1, head: false }
  }
  // Framing: lengths that lie, chunked bodies, both at once, pipelining, odd line endings.
  const payload = Buffer.from(JSON.stringify(chat(rng, { stream: false })))
  const head = (extra: string[], close = true): string => headerBlock([`POST /v1/chat/completions HTTP/1.1`, HOST, 'content-type: application/json', ...extra, ...(close ? ['connection: close'] : [])])
  const chunked = (p: Buffer): string => `${p.length.toString(16)}\r\n${p.toString('latin1')}\r\n0\r\n\r\n`
  switch (rng.int(12)) {
    case 0: return { family, what: `${n} chunked`, pieces: [head(['transfer-encoding: chunked']) + chunked(payload)], expect: 1, head: false }
    case 1: return { family, what: `${n} chunked, bad size`, pieces: [head(['transfer-encoding: chunked']) + `zz\r\n${payload.toString('latin1')}\r\n0\r\n\r\n`], expect: 1, head: false }
    case 2: return { family, what: `${n} TE + CL`, pieces: [head(['transfer-encoding: chunked', `content-length: ${payload.length}`]) + chunked(payload)], expect: 1, head: false, statuses: [400] }
    case 3: return { family, what: `${n} two CL`, pieces: [head([`content-length: ${payload.length}`, `content-length: ${payload.length + 1}`]) + payload.toString('latin1')], expect: 1, head: false, statuses: [400] }
    case 4: return { family, what: `${n} CL shorter (smuggled tail)`, pieces: [head([`content-length: ${payload.length - 5}`], false) + payload.toString('latin1') + 'GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'], expect: 1, head: false }
    case 5: return { family, what: `${n} CL negative/garbage`, pieces: [head([`content-length: ${rng.pick(['-1', '+5', '0x10', '1e3', ' ', '99999999999999999999'])}`]) + payload.toString('latin1')], expect: 1, head: false }
    case 6: {
      const k = 2 + rng.int(3)
      const reqs = Array.from({ length: k }, (_, i) => request('POST', '/v1/chat/completions', [HOST, 'content-type: application/json'], payload, i === k - 1))
      return { family, what: `${n} ${k} pipelined`, pieces: [Buffer.concat(reqs)], expect: k, head: false }
    }
    case 7: return { family, what: `${n} bare LF`, pieces: [`POST /v1/chat/completions HTTP/1.1\nhost: x\ncontent-length: ${payload.length}\nconnection: close\n\n${payload.toString('latin1')}`], expect: 1, head: false }
    case 8: return { family, what: `${n} HTTP/1.0`, pieces: [`POST /v1/chat/completions HTTP/1.0\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n${payload.toString('latin1')}`], expect: 1, head: false }
    case 9: return { family, what: `${n} HTTP/2 preface`, pieces: ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'], expect: 1, head: false }
    case 10: {
      // Sent in small pieces with pauses: slow but within the request deadline.
      const bytes = Buffer.concat([Buffer.from(head([`content-length: ${payload.length}`])), payload])
      const pieces: Array<Buffer | number> = []
      for (let at = 0; at < bytes.length; at += 64) pieces.push(bytes.subarray(at, at + 64), 2)
      return { family, what: `${n} trickled`, pieces, expect: 1, head: false }
    }
    default: return { family, what: `${n} garbage request line`, pieces: [rng.bytes(1 + rng.int(100)), '\r\n\r\n'], expect: 1, head: false }
  }
}
