/**
 * Collects the upstream response bytes as they pass through to the client. Nothing is parsed per
 * chunk; on a clean end the whole body is validated and handed to `commit` once. Past the size
 * limit, on abort, or on a non-200 it quietly drops what it holds.
 */
export interface Recorder {
  onData(chunk: Buffer): void
  onEnd(): void
  onAbort(): void
}

export class BodyRecorder implements Recorder {
  readonly #maxBytes: number
  readonly #commit: (body: Buffer) => void
  #chunks: Buffer[] | null = []
  #bytes = 0

  constructor(maxBytes: number, commit: (body: Buffer) => void) {
    this.#maxBytes = maxBytes
    this.#commit = commit
  }

  onData(chunk: Buffer): void {
    if (this.#chunks === null) return
    this.#bytes += chunk.length
    if (this.#bytes > this.#maxBytes) {
      this.#chunks = null
      return
    }
    this.#chunks.push(chunk)
  }

  onEnd(): void {
    const chunks = this.#chunks
    if (chunks === null) return
    this.#chunks = null
    // Joining, validation and storing run after the response has finished, off the request's path.
    setImmediate(BodyRecorder.#finish, this, chunks)
  }

  static #finish(self: BodyRecorder, chunks: Buffer[]): void {
    self.#commit(ownBytes(chunks, self.#bytes))
  }

  onAbort(): void {
    this.#chunks = null
  }
}

/**
 * The body in one buffer that owns exactly its bytes: the chunks are views into the HTTP client's
 * larger read buffers, which a cache entry must not pin. One copy, whatever the chunk count.
 */
function ownBytes(chunks: readonly Buffer[], bytes: number): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes)
  let at = 0
  for (const c of chunks) at += c.copy(out, at)
  return out
}
