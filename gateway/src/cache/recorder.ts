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
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#bytes)
    // Validation and compression run after the response has finished, off the request's path.
    setImmediate(this.#commit, body)
  }

  onAbort(): void {
    this.#chunks = null
  }
}
