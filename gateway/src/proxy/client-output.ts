/**
 * Where one call's answer goes: the client's response, or a provider's translation in front of it
 * (an upstream of another protocol), with body chunks written straight to the client's socket once
 * node:http holds nothing back (chunk-writer.ts).
 *
 * A call writes its answer only through here; what reaches the client is decided by the call.
 */
import type { Socket } from 'node:net'
import type { ClientResponse } from '../protocols/client-response.ts'
import type { GatewayError } from '../errors.ts'
import type { EndpointName } from './endpoints.ts'
import { directSocket, firstChunkSocket, writeChunk, writeFirstChunk } from './chunk-writer.ts'
import { writeResponseHead } from './response-head.ts'
import { sseErrorEvent, writeError } from './respond.ts'

/** Corks `socket` until node:http's `end` (which fully uncorks it) or, failing that, this task's end. */
function holdForEnd(socket: Socket): void {
  socket.cork()
  queueMicrotask(() => {
    if (socket.writableCorked > 0) socket.uncork()
  })
}

export class ClientOutput {
  /** The client's own response. */
  readonly res: ClientResponse
  /** Where the answer's head and body are written: `res`, or a translation in front of it. */
  #out: ClientResponse
  /** The client's socket once chunks may be written to it directly; null until then. */
  #socket: Socket | null

  constructor(res: ClientResponse) {
    this.res = res
    this.#out = res
    this.#socket = null
  }

  /** The answer is in another protocol: `translation` turns it into the client's before `res`. */
  through(translation: ClientResponse): void {
    this.#out = translation
  }

  /** The answer cannot reach the client any more. */
  get gone(): boolean {
    return this.#out.destroyed
  }

  /** The answer's status and headers (a flat name/value list). */
  head(status: number, headers: string[]): void {
    if (!this.#out.destroyed) writeResponseHead(this.#out, status, headers)
  }

  /**
   * Writes body bytes; false asks the writer to wait for `whenDrained`. `ending`: `end` follows
   * at once, so the bytes wait in the corked socket for the body's terminating chunk (which
   * node:http's `end` writes and then uncorks) and both leave in one write, as the upstream's
   * last read brought them. Should `end` not come, the socket is uncorked once this task is done.
   */
  write(bytes: Buffer, ending = false): boolean {
    const out = this.#out
    if (out.destroyed) return true
    if (out !== this.res) return out.write(bytes)
    let socket = this.#socket
    if (socket === null) {
      // The first chunk goes with the response's head, now; from the second on, one write per chunk.
      socket = directSocket(out)
      if (socket === null) {
        const first = firstChunkSocket(out)
        if (first === null) return out.write(bytes)
        this.#socket = first
        if (ending) holdForEnd(first)
        return writeFirstChunk(out, first, bytes)
      }
      this.#socket = socket
    }
    if (socket.destroyed) return true
    if (ending) holdForEnd(socket)
    return writeChunk(out, socket, bytes)
  }

  /** Calls `resume` once the client has taken what `write` could not pass on at once. */
  whenDrained(resume: () => void): void {
    ;(this.#socket ?? this.res).once('drain', resume)
  }

  /** The answer is complete, with `last` as its final bytes. */
  end(last?: Buffer): void {
    if (!this.#out.destroyed) this.#out.end(last)
  }

  /**
   * Bytes for the client itself, past any translation (which would drop what is not in the
   * answer's protocol, such as an SSE comment); false when the client is gone.
   */
  writeRaw(bytes: Buffer): boolean {
    if (this.res.destroyed) return false
    this.res.write(bytes)
    return true
  }

  /**
   * Ends an answer that already started: a stream whose head went out gets an SSE error event in
   * the endpoint's shape, anything else a cut connection.
   */
  break(err: GatewayError, sse: boolean, endpoint: EndpointName): void {
    const res = this.res
    if (res.destroyed) return
    if (sse && res.headersSent) res.end(sseErrorEvent(err, endpoint))
    else res.destroy(err)
  }

  /** The call's answer is a gateway error, in the client's API shape. */
  error(err: GatewayError, headers: Record<string, string>): void {
    writeError(this.res, err, headers)
  }
}
