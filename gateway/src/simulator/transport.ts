/**
 * Writing replies to the socket: delays, stream pacing and the on-the-wire faults. Per-request
 * state lives in fields of the request/response subclasses (fixed shapes, set in the
 * constructor), and timers call shared functions with the response as argument, so the hot
 * path allocates no closures.
 */

import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import type { SimCore } from './core.ts'
import type { EngineRequest } from './engine.ts'
import { type Faults, NO_FAULTS } from './faults.ts'
import type { JsonReply, StreamReply } from './reply.ts'

// node:http through require, not an ESM import: building an ESM namespace of node:http reads its
// lazy WebSocket getters, which loads Node's bundled undici (about 12 MB resident) for nothing.
const { IncomingMessage, ServerResponse } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

export class SimRequest extends IncomingMessage {
  /** Body bytes: one chunk in the common case, so no concatenation. */
  chunk: Buffer | null = null
  chunks: Buffer[] | null = null
  size = 0
  reply: SimResponse | null = null

  text(): string {
    if (this.chunks !== null) return Buffer.concat(this.chunks, this.size).toString()
    return this.chunk === null ? '' : this.chunk.toString()
  }
}

export class SimResponse extends ServerResponse<SimRequest> {
  core: SimCore | null = null
  route = 0
  path = ''
  /** Counted in stats; its close decrements `open`. */
  counted = false
  /** The connection closed or the response finished: write nothing more. */
  gone = false
  timer: NodeJS.Timeout | null = null
  faults: Readonly<Faults> = NO_FAULTS
  /** Status from the `status` fault, 0 for none; decided on arrival. */
  faultStatus = 0
  jsonStatus = 200
  jsonBody: string | Buffer = ''
  jsonHeaders: string[] | null = null
  events: (string | Buffer)[] | null = null
  pauses: Uint8Array | null = null
  next = 0
  interTokenMs = 0
  resetAt = -1
  hangAt = -1
  /** The parsed body of a generation request (the vLLM engine reads the prompt from it). */
  params: Record<string, unknown> | null = null
  /** In the vLLM engine's queue or batch until its last token. */
  engineRequest: EngineRequest | null = null
}

export const SSE_HEADERS = ['content-type', 'text/event-stream', 'cache-control', 'no-cache', 'x-accel-buffering', 'no']

export function cancelTimer(res: SimResponse): void {
  if (res.timer !== null) {
    clearTimeout(res.timer)
    res.timer = null
  }
}

export function writeJson(res: SimResponse, status: number, body: string | Buffer, extraHeaders: string[] | null = null): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length
  const headers = ['content-type', 'application/json', 'content-length', String(length)]
  if (extraHeaders !== null) headers.push(...extraHeaders)
  res.writeHead(status, headers)
  res.end(body)
}

/** A successful JSON reply: after the time-to-first-token delay, subject to the body faults. */
export function deliverJson(res: SimResponse, reply: JsonReply, ttftMs: number): void {
  res.jsonStatus = reply.status
  res.jsonBody = reply.body
  res.jsonHeaders = reply.headers ?? null
  if (ttftMs > 0) res.timer = setTimeout(sendJsonBody, ttftMs, res)
  else sendJsonBody(res)
}

function sendJsonBody(res: SimResponse): void {
  res.timer = null
  if (res.gone) return
  const f = res.faults
  if (f === NO_FAULTS || (f.stallAfterHeadersMs === 0 && f.resetAfterChunks === null && f.hangAfterChunks === null)) {
    writeJson(res, res.jsonStatus, res.jsonBody, res.jsonHeaders)
    return
  }
  const body = typeof res.jsonBody === 'string' ? Buffer.from(res.jsonBody) : res.jsonBody
  res.jsonBody = body
  res.writeHead(res.jsonStatus, ['content-type', 'application/json', 'content-length', String(body.length)])
  if (f.resetAfterChunks !== null || f.hangAfterChunks !== null) {
    // A body has no events to count: any setting cuts it in half, so the client holds a truncated body.
    res.write(body.subarray(0, body.length >> 1))
    if (f.hangAfterChunks === null || (f.resetAfterChunks !== null && f.resetAfterChunks <= f.hangAfterChunks)) {
      resetConnection(res)
    }
    return
  }
  res.flushHeaders()
  res.timer = setTimeout(endJsonBody, f.stallAfterHeadersMs, res)
}

function endJsonBody(res: SimResponse): void {
  res.timer = null
  if (!res.gone) res.end(res.jsonBody)
}

/** A 200 event stream, paced by the delays and cut short by the stream faults. */
export function deliverStream(res: SimResponse, reply: StreamReply, ttftMs: number, interTokenMs: number): void {
  const f = res.faults
  if (f.errorEventFirst) {
    res.events = [reply.errorEvent]
    res.pauses = null
  } else {
    res.events = reply.events
    res.pauses = reply.pauses
  }
  res.next = 0
  res.interTokenMs = f.interTokenMs ?? interTokenMs
  res.resetAt = f.resetAfterChunks ?? -1
  res.hangAt = f.hangAfterChunks ?? -1
  res.writeHead(200, reply.headers ?? SSE_HEADERS)
  const delay = f.stallAfterHeadersMs + ttftMs
  if (delay > 0) {
    // Headers go out now, as an inference server does once it accepts the request.
    res.flushHeaders()
    res.timer = setTimeout(pump, delay, res)
  } else {
    pump(res)
  }
}

function pump(res: SimResponse): void {
  res.timer = null
  const events = res.events!
  const pauses = res.pauses
  for (;;) {
    if (res.gone) return
    const i = res.next
    if (i === res.resetAt || i === res.hangAt) {
      // With N = 0 nothing has been written yet; the client must still see the 200 headers.
      if (i === 0) res.flushHeaders()
      if (i === res.resetAt) resetConnection(res)
      return
    }
    if (i === events.length) {
      res.end()
      return
    }
    res.write(events[i]!)
    res.next = i + 1
    if (pauses !== null && pauses[i + 1] === 1 && res.interTokenMs > 0) {
      res.timer = setTimeout(pump, res.interTokenMs, res)
      return
    }
  }
}

/**
 * Resets the connection with a TCP RST once what was already written has reached the kernel:
 * writes made in this tick are still corked in Node, and an RST would discard them.
 */
export function resetConnection(res: SimResponse): void {
  res.gone = true
  // The request's socket, not the response's: a pipelined response has none until its turn.
  setImmediate(resetWhenFlushed, res.req.socket)
}

function resetWhenFlushed(socket: Socket): void {
  if (socket.destroyed) return
  if (socket.writableLength > 0) socket.once('drain', () => resetWhenFlushed(socket))
  else socket.resetAndDestroy()
}
