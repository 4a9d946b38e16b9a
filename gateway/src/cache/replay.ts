/**
 * Writes a cached answer in the shape the client asked for: JSON for a plain request, a chunked
 * SSE stream ending with `[DONE]` for a streaming one, whichever shape the answer was stored in.
 */
import type { ClientResponse } from '../protocols/client-response.ts'
import type { CachedResponse } from './entry.ts'
import { parseSse, sseData, SSE_DONE } from './sse.ts'

export const CACHE_STATUS_HEADER = 'x-velox-cache'
export const CACHE_SIMILARITY_HEADER = 'x-velox-cache-similarity'
export const CACHE_REASON_HEADER = 'x-velox-cache-reason'

export type CacheStatus = 'hit' | 'semantic-hit' | 'miss' | 'bypass'

export interface ReplayShape {
  readonly stream: boolean
  readonly includeUsage: boolean
}

/** Whether the entry can answer a request of this shape without inventing anything. */
export function servesShape(e: Pick<CachedResponse, 'endpoint' | 'shape' | 'hasUsage'>, want: ReplayShape): boolean {
  switch (e.endpoint) {
    case 'embeddings':
      return !want.stream
    case 'responses':
      // A Responses stream can be cut down to its final object, not rebuilt from one.
      return e.shape === 'sse' || !want.stream
    default:
      // JSON answers always carry usage; a stream carries it when asked.
      return e.hasUsage || (want.stream && !want.includeUsage)
  }
}

/** Body chunks for the requested shape; each SSE event is its own chunk. */
export function replayChunks(e: CachedResponse, want: ReplayShape): { contentType: string; chunks: (string | Buffer)[] } {
  if (e.endpoint === 'responses') {
    if (want.stream) return { contentType: 'text/event-stream', chunks: [e.body] }
    if (e.shape === 'json') return { contentType: 'application/json', chunks: [e.body] }
    return { contentType: 'application/json', chunks: [responsesFinalObject(e.body)] }
  }
  if (!want.stream) return { contentType: 'application/json', chunks: [e.body] }
  const obj = JSON.parse(e.body.toString('utf8')) as Record<string, unknown>
  const chunks = e.endpoint === 'completions' ? textChunks(obj, want.includeUsage) : chatChunks(obj, want.includeUsage)
  chunks.push(SSE_DONE)
  return { contentType: 'text/event-stream', chunks }
}

function responsesFinalObject(raw: Buffer): string {
  for (const ev of parseSse(raw.toString('utf8'))) {
    if (ev.event !== null && ev.event !== 'response.completed') continue
    const data = JSON.parse(ev.data) as { type?: string; response?: unknown }
    if (data.type === 'response.completed' && data.response !== undefined) return JSON.stringify(data.response)
  }
  throw new Error('stored Responses stream has no response.completed event')
}

type Json = Record<string, unknown>

function chunkBase(obj: Json, object: string): Json {
  const base: Json = { id: obj.id, object, created: obj.created, model: obj.model }
  if (obj.system_fingerprint !== undefined) base.system_fingerprint = obj.system_fingerprint
  if (obj.service_tier !== undefined) base.service_tier = obj.service_tier
  return base
}

function chatChunks(obj: Json, includeUsage: boolean): string[] {
  const base = chunkBase(obj, 'chat.completion.chunk')
  const usageField = includeUsage ? { usage: null } : null
  const out: string[] = []
  const choices = (obj.choices as Json[]) ?? []
  for (const c of choices) {
    const msg = (c.message ?? {}) as Json
    const delta: Json = {}
    for (const [k, v] of Object.entries(msg)) {
      if (v === null || v === undefined) continue
      if (k === 'tool_calls' && Array.isArray(v)) {
        delta.tool_calls = (v as Json[]).map((tc, index) => ({ index, ...tc }))
      } else {
        delta[k] = v
      }
    }
    if (delta.role === undefined) delta.role = 'assistant'
    if (delta.content === undefined && delta.tool_calls === undefined) delta.content = ''
    out.push(sseData(JSON.stringify({ ...base, choices: [{ index: c.index, delta, logprobs: c.logprobs ?? null, finish_reason: null }], ...usageField })))
    out.push(sseData(JSON.stringify({ ...base, choices: [{ index: c.index, delta: {}, logprobs: null, finish_reason: c.finish_reason }], ...usageField })))
  }
  if (includeUsage) out.push(sseData(JSON.stringify({ ...base, choices: [], usage: obj.usage ?? null })))
  return out
}

function textChunks(obj: Json, includeUsage: boolean): string[] {
  const base = chunkBase(obj, 'text_completion')
  const usageField = includeUsage ? { usage: null } : null
  const out: string[] = []
  for (const c of (obj.choices as Json[]) ?? []) {
    out.push(sseData(JSON.stringify({ ...base, choices: [{ index: c.index, text: c.text ?? '', logprobs: c.logprobs ?? null, finish_reason: c.finish_reason }], ...usageField })))
  }
  if (includeUsage) out.push(sseData(JSON.stringify({ ...base, choices: [], usage: obj.usage ?? null })))
  return out
}

export function writeReplay(
  e: CachedResponse,
  want: ReplayShape,
  res: ClientResponse,
  cacheHeaders: Record<string, string>,
  extraHeaders: Record<string, string>,
): void {
  const { contentType, chunks } = replayChunks(e, want)
  const headers: Record<string, string | number> = { ...extraHeaders, ...cacheHeaders, 'content-type': contentType, age: String(Math.max(0, Math.floor((Date.now() - e.storedAt) / 1000))) }
  if (!want.stream) {
    const body = chunks[0]!
    headers['content-length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    res.writeHead(200, headers)
    res.end(body)
    return
  }
  headers['cache-control'] = 'no-cache'
  headers['x-accel-buffering'] = 'no'
  res.writeHead(200, headers)
  // One HTTP chunk per event, as from a live upstream; the events are tiny and leave together.
  for (const c of chunks) res.write(c)
  res.end()
}
