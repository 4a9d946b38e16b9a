/**
 * Turns a recorded upstream response into the body the cache stores, or rejects it. Only a
 * complete, successful answer is accepted: a stream must end with `[DONE]` (or `response.completed`
 * for the Responses API), carry no error event, and every choice must have finished. Chat and
 * completions streams are folded into the equivalent JSON object, so either shape can be replayed.
 * Anything the fold does not understand makes the response uncacheable rather than altered.
 */
import type { CacheEndpoint } from './config.ts'
import type { BodyShape } from './entry.ts'
import { parseSse, type SseEvent } from './sse.ts'

export interface NormalizedBody {
  readonly shape: BodyShape
  readonly sourceShape: BodyShape
  readonly hasUsage: boolean
  readonly body: Buffer
}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v)

export function normalizeResponse(endpoint: CacheEndpoint, contentType: string, body: Buffer): NormalizedBody | null {
  const sse = contentType.includes('text/event-stream')
  if (!sse && !contentType.includes('json')) return null
  try {
    if (!sse) return normalizeJson(endpoint, body)
    const events = parseSse(body.toString('utf8'))
    switch (endpoint) {
      case 'chat.completions':
        return foldStream(events, foldChatChoice, 'chat.completion')
      case 'completions':
        return foldStream(events, foldTextChoice, 'text_completion')
      case 'responses':
        return responsesStream(events, body)
      case 'embeddings':
        return null
    }
  } catch {
    return null
  }
}

function normalizeJson(endpoint: CacheEndpoint, body: Buffer): NormalizedBody | null {
  const obj: unknown = JSON.parse(body.toString('utf8'))
  if (!isObject(obj) || obj.error !== undefined && obj.error !== null) return null
  let ok: boolean
  switch (endpoint) {
    case 'chat.completions':
    case 'completions':
      ok = Array.isArray(obj.choices) && obj.choices.length > 0 && obj.choices.every((c) => isObject(c) && typeof c.finish_reason === 'string')
      break
    case 'embeddings':
      ok = Array.isArray(obj.data) && obj.data.length > 0
      break
    case 'responses':
      ok = obj.status === 'completed'
      break
  }
  if (!ok) return null
  return { shape: 'json', sourceShape: 'json', hasUsage: isObject(obj.usage), body }
}

function responsesStream(events: SseEvent[], raw: Buffer): NormalizedBody | null {
  let completed = false
  for (const e of events) {
    const type = e.event ?? (JSON.parse(e.data) as Json).type
    if (type === 'error' || type === 'response.failed' || type === 'response.incomplete') return null
    if (type === 'response.completed') completed = true
  }
  return completed ? { shape: 'sse', sourceShape: 'sse', hasUsage: true, body: raw } : null
}

type ChoiceFolder = (acc: Json, chunk: Json) => boolean

function foldStream(events: SseEvent[], fold: ChoiceFolder, object: string): NormalizedBody | null {
  const last = events.at(-1)
  if (last === undefined || last.data !== '[DONE]') return null
  const out: Json = { id: null, object, created: null, model: null }
  const choices: Json[] = []
  let usage: unknown = null
  for (let i = 0; i < events.length - 1; i++) {
    const e = events[i]!
    if (e.event !== null && e.event !== 'message') return null
    if (e.data === '[DONE]') return null
    const chunk: unknown = JSON.parse(e.data)
    if (!isObject(chunk) || chunk.error !== undefined && chunk.error !== null) return null
    if (out.id === null) {
      out.id = chunk.id ?? null
      out.created = chunk.created ?? null
      out.model = chunk.model ?? null
    }
    if (typeof chunk.system_fingerprint === 'string') out.system_fingerprint = chunk.system_fingerprint
    if (typeof chunk.service_tier === 'string') out.service_tier = chunk.service_tier
    if (isObject(chunk.usage)) usage = chunk.usage
    if (!Array.isArray(chunk.choices)) continue
    for (const c of chunk.choices) {
      if (!isObject(c) || typeof c.index !== 'number' || c.index < 0 || c.index > 127) return null
      const acc = (choices[c.index] ??= { index: c.index })
      if (!fold(acc, c)) return null
      if (typeof c.finish_reason === 'string') acc.finish_reason = c.finish_reason
    }
  }
  if (choices.length === 0) return null
  for (const c of choices) if (c === undefined || typeof c.finish_reason !== 'string') return null
  out.choices = choices
  if (usage !== null) out.usage = usage
  return { shape: 'json', sourceShape: 'sse', hasUsage: usage !== null, body: Buffer.from(JSON.stringify(out)) }
}

/** Delta fields whose string pieces are concatenated into the final message. */
const CONCAT_DELTA = new Set(['content', 'refusal', 'reasoning_content', 'reasoning'])

const foldChatChoice: ChoiceFolder = (acc, c) => {
  const message = (acc.message ??= { role: 'assistant', content: null }) as Json
  if (!('logprobs' in acc)) acc.logprobs = null
  const d = c.delta
  if (d !== undefined && d !== null) {
    if (!isObject(d)) return false
    for (const [k, v] of Object.entries(d)) {
      if (v === null || v === undefined) continue
      if (k === 'role') {
        if (typeof v !== 'string') return false
        message.role = v
      } else if (k === 'tool_calls') {
        if (!foldToolCalls(message, v)) return false
      } else if (typeof v === 'string' && (CONCAT_DELTA.has(k) || !(k in message) || typeof message[k] === 'string')) {
        message[k] = typeof message[k] === 'string' ? (message[k] as string) + v : v
      } else {
        return false
      }
    }
  }
  if (c.logprobs !== undefined && c.logprobs !== null) {
    if (!isObject(c.logprobs)) return false
    const lp = (acc.logprobs ??= {}) as Json
    for (const [k, v] of Object.entries(c.logprobs)) {
      if (v === null) continue
      if (!Array.isArray(v)) return false
      lp[k] = Array.isArray(lp[k]) ? (lp[k] as unknown[]).concat(v) : v.slice()
    }
  }
  return true
}

function foldToolCalls(message: Json, v: unknown): boolean {
  if (!Array.isArray(v)) return false
  const calls = (message.tool_calls ??= []) as Json[]
  for (const tc of v) {
    if (!isObject(tc) || typeof tc.index !== 'number') return false
    const call = (calls[tc.index] ??= { id: null, type: 'function', function: { name: '', arguments: '' } })
    if (typeof tc.id === 'string') call.id = tc.id
    if (typeof tc.type === 'string') call.type = tc.type
    const f = tc.function
    if (f !== undefined && f !== null) {
      if (!isObject(f)) return false
      const target = call.function as Json
      if (typeof f.name === 'string') target.name = (target.name as string) + f.name
      if (typeof f.arguments === 'string') target.arguments = (target.arguments as string) + f.arguments
    }
  }
  return true
}

const foldTextChoice: ChoiceFolder = (acc, c) => {
  if (c.text !== undefined && c.text !== null) {
    if (typeof c.text !== 'string') return false
    acc.text = typeof acc.text === 'string' ? acc.text + c.text : c.text
  } else if (acc.text === undefined) {
    acc.text = ''
  }
  if (!('logprobs' in acc)) acc.logprobs = null
  if (c.logprobs !== undefined && c.logprobs !== null) {
    if (!isObject(c.logprobs)) return false
    const lp = (acc.logprobs ??= {}) as Json
    for (const [k, v] of Object.entries(c.logprobs)) {
      if (!Array.isArray(v)) return false
      lp[k] = Array.isArray(lp[k]) ? (lp[k] as unknown[]).concat(v) : v.slice()
    }
  }
  return true
}
