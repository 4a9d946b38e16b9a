/**
 * What an endpoint builder returns: a complete JSON body, or a stream plan the transport plays
 * out with the configured delays and faults. Builders never touch the socket.
 */
import { sseData, SSE_DONE } from '../protocols/sse.ts'

export interface JsonReply {
  readonly kind: 'json'
  readonly status: number
  readonly body: string | Buffer
  /** Headers besides the content type and length (a provider's request id or error type). */
  readonly headers?: string[]
}

export interface StreamReply {
  readonly kind: 'stream'
  /** Each entry is one complete SSE event (or binary event-stream message), written with its own `res.write`. */
  readonly events: (string | Buffer)[]
  /** `pauses[i] === 1` means wait the inter-token delay before writing `events[i]`. */
  readonly pauses: Uint8Array
  /** Sent alone when the `errorEventFirst` fault is on. */
  readonly errorEvent: string | Buffer
  /** The response headers instead of the SSE ones (Bedrock's binary event stream). */
  readonly headers?: string[]
}

export type Reply = JsonReply | StreamReply

/** Per-simulator generation settings shared by every builder. */
export interface GenConfig {
  readonly tokens: number
  readonly embeddingDim: number
  /** Makes response ids unique across simulator instances. */
  readonly idTag: string
}

/** Per-request values a builder needs besides the body. */
export interface GenRequest {
  readonly seq: number
  readonly created: number
}

export function json(status: number, body: string | Buffer): JsonReply {
  return { kind: 'json', status, body }
}

export function errorJson(message: string, type: string, param: string | null, code: string | null): string {
  return JSON.stringify({ error: { message, type, param, code } })
}

export function invalidRequest(message: string, param: string | null, code: string | null = null): JsonReply {
  return json(400, errorJson(message, 'invalid_request_error', param, code))
}

export function notFound(method: string, path: string): JsonReply {
  return json(404, errorJson(`Invalid URL (${method} ${path})`, 'invalid_request_error', null, null))
}

// The gateway's one set of SSE writers (protocols/sse.ts), for the simulator's streams too.
export { sseData, SSE_DONE }

export const STREAM_ERROR_EVENT = sseData(
  errorJson('The simulated model failed while generating', 'server_error', null, 'simulated_stream_error'),
)

/** Model name as a JSON string literal, ready to splice into a body. */
export function readModel(body: Record<string, unknown>): string | JsonReply {
  const model = body.model
  if (typeof model !== 'string' || model.length === 0) {
    return invalidRequest('you must provide a model parameter', 'model')
  }
  return JSON.stringify(model)
}

/** A positive integer limit, `Infinity` when absent, or an error reply. */
export function readLimit(value: unknown, param: string): number | JsonReply {
  if (value === undefined || value === null) return Infinity
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    return invalidRequest(`${param} must be a positive integer`, param)
  }
  return value as number
}

export function readChoiceCount(value: unknown): number | JsonReply {
  if (value === undefined || value === null) return 1
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 128) {
    return invalidRequest('n must be an integer between 1 and 128', 'n')
  }
  return value as number
}

export function wantsUsage(body: Record<string, unknown>): boolean {
  const opts = body.stream_options
  return opts !== null && typeof opts === 'object' && (opts as { include_usage?: unknown }).include_usage === true
}

export function usageJson(prompt: number, completion: number): string {
  return '{"prompt_tokens":' + prompt + ',"completion_tokens":' + completion + ',"total_tokens":' + (prompt + completion) + '}'
}
