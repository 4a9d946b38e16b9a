/**
 * A proxied body's chunks written to the client's socket in one piece each.
 *
 * node:http frames every `res.write(chunk)` of a chunked response as four writes to the socket
 * (the size in hex as a new string, CRLF, the chunk, CRLF), corks the socket and uncorks it on the
 * next tick, so each event of a stream costs a tick, a write request holding four buffers and a
 * writev. Once the response's head is out and node:http holds nothing back, a chunk framed into
 * one buffer and written straight to the socket puts the same bytes on the wire with one write.
 * The response still ends through node:http (`res.end()` writes the last chunk, `0\r\n\r\n`), so
 * keep-alive, `finish` and `close` are unchanged.
 *
 * The first chunk goes out the same way, with the head node:http stored at `writeHead` in front of
 * it: through `res.write` it would wait in the corked socket until the next tick, behind whatever
 * else the read that brought it does, and go out as a writev of five buffers. Written at once, the
 * client has its first token while the gateway is still busy with the rest of that read.
 *
 * A body with a Content-Length (every non-streamed answer) goes the same way, unframed: its head
 * and its bytes (usually the whole body, one read of the upstream's) leave in one write, where
 * `res.write` would cork the socket, queue the head and the chunk in node:http, and flush them as
 * a writev of two on the next tick, with `res.end()` adding an empty write of its own behind them.
 * `res.end()` then has nothing left to send: it only schedules `finish`.
 */
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { ClientResponse } from '../protocols/client-response.ts'

const CRLF = 0x0d0a

/**
 * node:http's own state, read to know it holds nothing back (not in its types). `headersSent` is
 * true once the head is stored; `_headerSent` once it went to the socket.
 */
type NodeResponse = ServerResponse & { chunkedEncoding?: boolean; outputData?: unknown[]; _hasBody?: boolean; _headerSent?: boolean; _header?: string | null }

/**
 * The socket a chunk of `res` may be written to directly, or null when it must go through
 * `res.write` (not node:http's response, no body, head not sent yet, data queued in node:http, a
 * pipelined response not yet at the socket, or the response ended). Chunks of a chunked body are
 * written framed (`frameChunk`), those of any other as they are.
 */
export function directSocket(res: ClientResponse): Socket | null {
  const r = res as NodeResponse
  if (r._headerSent !== true) return null
  return bodySocket(r)
}

/**
 * The socket `res`'s head and first chunk may be written to together (`writeFirstChunk`), or null:
 * as `directSocket`, but with the head stored by `writeHead` and not sent yet.
 */
export function firstChunkSocket(res: ClientResponse): Socket | null {
  const r = res as NodeResponse
  if (r._headerSent !== false || typeof r._header !== 'string') return null
  return bodySocket(r)
}

function bodySocket(r: NodeResponse): Socket | null {
  if (r._hasBody !== true || r.writableEnded) return null
  const socket = r.socket as (Socket & { _httpMessage?: unknown }) | null
  if (socket == null || socket._httpMessage !== r || socket.destroyed || !socket.writable) return null
  if (r.outputData === undefined || r.outputData.length !== 0) return null
  return socket
}

/** Writes `chunk` of `res` to `socket` (from `directSocket`), framed when the body is chunked. */
export function writeChunk(res: ClientResponse, socket: Socket, chunk: Buffer): boolean {
  return socket.write((res as NodeResponse).chunkedEncoding === true ? frameChunk(chunk) : chunk)
}

/**
 * Writes `res`'s stored head and `chunk` behind it (framed when the body is chunked) to `socket`
 * (from `firstChunkSocket`) in one write, and tells node:http its head is sent, as its own first
 * write would have.
 */
export function writeFirstChunk(res: ClientResponse, socket: Socket, chunk: Buffer): boolean {
  const r = res as NodeResponse
  const head = r._header!
  let out: Buffer
  if (r.chunkedEncoding === true) out = frame(chunk, head.length)
  else {
    out = Buffer.allocUnsafe(head.length + chunk.length)
    chunk.copy(out, head.length)
  }
  out.write(head, 0, 'latin1')
  r._headerSent = true
  return socket.write(out)
}

/** `chunk` as one chunk of a chunked body: size in hex, CRLF, the bytes, CRLF. */
export function frameChunk(chunk: Buffer): Buffer {
  return frame(chunk, 0)
}

/** `chunk` framed, behind `at` bytes left for the caller to fill. */
function frame(chunk: Buffer, at: number): Buffer {
  const length = chunk.length
  let digits = 1
  for (let n = length >>> 4; n !== 0; n >>>= 4) digits++
  const out = Buffer.allocUnsafe(at + digits + 4 + length)
  for (let i = at + digits - 1, n = length; i >= at; i--, n >>>= 4) {
    const d = n & 15
    out[i] = d < 10 ? 0x30 + d : 0x57 + d // 0-9, a-f
  }
  out.writeUInt16BE(CRLF, at + digits)
  chunk.copy(out, at + digits + 2)
  out.writeUInt16BE(CRLF, at + digits + 2 + length)
  return out
}
