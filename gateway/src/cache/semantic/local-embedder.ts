/** The embedded default embedder: the Universal Sentence Encoder lite in a worker thread. */
import { Worker } from 'node:worker_threads'
import { EmbedderOverloadedError, type Embedder } from './embedder.ts'

/** Beyond this many embeddings in flight new ones are refused, which bounds the CPU spent. */
const MAX_IN_FLIGHT = 32

interface Pending {
  resolve(v: Float32Array): void
  reject(e: Error): void
}

type WorkerMessage = { ready: true; id: string } | { fatal: string } | { id: number; vector: Float32Array } | { id: number; error: string }

export class LocalEmbedder implements Embedder {
  readonly id: string
  readonly kind = 'local'
  readonly #worker: Worker
  readonly #pending = new Map<number, Pending>()
  #nextId = 1

  private constructor(worker: Worker, id: string) {
    this.#worker = worker
    this.id = id
    worker.on('message', (m: WorkerMessage) => {
      if (!('id' in m) || typeof m.id !== 'number') return
      const p = this.#pending.get(m.id)
      if (p === undefined) return
      this.#pending.delete(m.id)
      if ('vector' in m) p.resolve(m.vector)
      else p.reject(new Error((m as { error: string }).error))
    })
    worker.on('error', (err) => this.#failAll(err))
    worker.on('exit', () => this.#failAll(new Error('embedder worker exited')))
  }

  /** Starts the worker and waits until the model is loaded (about a second). */
  static start(): Promise<LocalEmbedder> {
    const worker = new Worker(new URL('./local-embedder-worker.ts', import.meta.url))
    return new Promise((resolve, reject) => {
      const onMessage = (m: WorkerMessage): void => {
        if ('ready' in m) {
          worker.off('message', onMessage)
          worker.unref()
          resolve(new LocalEmbedder(worker, m.id))
        } else if ('fatal' in m) {
          worker.off('message', onMessage)
          void worker.terminate()
          reject(new Error('embedded model failed to load: ' + m.fatal))
        }
      }
      worker.on('message', onMessage)
      worker.once('error', reject)
    })
  }

  embed(text: string, signal?: AbortSignal): Promise<Float32Array> {
    if (this.#pending.size >= MAX_IN_FLIGHT) return Promise.reject(new EmbedderOverloadedError())
    if (signal?.aborted) return Promise.reject(signal.reason as Error)
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      // An abort only releases the caller; the worker still finishes the batch it is in.
      const onAbort = (): void => {
        this.#pending.delete(id)
        reject(signal!.reason as Error)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(v)
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      })
      this.#worker.postMessage({ id, text })
    })
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err)
    this.#pending.clear()
  }

  async close(): Promise<void> {
    this.#worker.removeAllListeners('exit')
    await this.#worker.terminate()
    this.#failAll(new Error('embedder closed'))
  }
}
