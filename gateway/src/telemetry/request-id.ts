/**
 * The id of a request: the client's `x-request-id` when it is a usable token, else a random UUID
 * (unique across processes and restarts, unlike a counter). A client's id is kept only when it
 * is short and plain, so it can go into headers, logs and span attributes as it is.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

export const REQUEST_ID_HEADER = 'x-request-id'
const USABLE = /^[\w.:/+=@-]{1,128}$/

export function requestId(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER]
  return typeof given === 'string' && USABLE.test(given) ? given : randomUUID()
}
