/**
 * What the request path writes a client's answer to: Node's ServerResponse, or a protocol
 * adapter in front of it that translates the internal (OpenAI-shaped) answer into the protocol
 * the client spoke. The proxy, the cache replay and the error writer use only these members, so
 * they never know which protocol is on the other side.
 */
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'

export interface ClientResponse {
  readonly destroyed: boolean
  readonly headersSent: boolean
  writeHead(status: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): unknown
  write(chunk: Buffer | string): boolean
  end(chunk?: Buffer | string): unknown
  destroy(err?: Error): unknown
  on(event: 'close' | 'drain', listener: () => void): unknown
  once(event: 'close' | 'drain', listener: () => void): unknown
  off(event: 'close' | 'drain', listener: () => void): unknown
}

/** Headers in either form as undici's flat `[name, value, ...]` list, names lower-cased. */
export function flatHeaders(headers: OutgoingHttpHeaders | readonly OutgoingHttpHeader[] | undefined): string[] {
  const out: string[] = []
  if (headers === undefined) return out
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) out.push(String(headers[i]).toLowerCase(), String(headers[i + 1]))
    return out
  }
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) out.push(name.toLowerCase(), v)
    else out.push(name.toLowerCase(), String(value))
  }
  return out
}

export function headerValue(flat: readonly string[], name: string): string | null {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) return flat[i + 1]!
  return null
}

/** The list without the named headers (content-length, once a translation changes the body). */
export function withoutHeaders(flat: readonly string[], names: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (let i = 0; i < flat.length; i += 2) if (!names.has(flat[i]!)) out.push(flat[i]!, flat[i + 1]!)
  return out
}
