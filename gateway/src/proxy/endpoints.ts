/** The OpenAI endpoints the gateway forwards, compiled once. */
export type EndpointName = 'chat.completions' | 'completions' | 'embeddings' | 'responses' | 'messages' | 'messages.count_tokens'

export interface Endpoint {
  readonly name: EndpointName
  /** Path the client calls, and the path appended to the upstream's base URL. */
  readonly path: string
  /** Whether a `stream: true` body is meaningful here. */
  readonly streams: boolean
}

export const ENDPOINTS: readonly Endpoint[] = Object.freeze([
  { name: 'chat.completions', path: '/v1/chat/completions', streams: true },
  { name: 'completions', path: '/v1/completions', streams: true },
  { name: 'embeddings', path: '/v1/embeddings', streams: false },
  { name: 'responses', path: '/v1/responses', streams: true },
] as const)
