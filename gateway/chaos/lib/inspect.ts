/**
 * Memory of a gateway process seen from outside, through the V8 inspector (the process is started
 * with `--inspect=127.0.0.1:0`; nothing in the gateway itself changes): a full garbage collection
 * on demand, the heap and external memory that survive it, and heap snapshots for diagnosis.
 *
 * Why post-GC figures: resident memory alone cannot tell a leak from V8 sizing its heap to the
 * load (the young generation grows from 1 MB up to its maximum under a high allocation rate, and
 * old-space pages freed by a collection are not always returned to the kernel at once). What the
 * process still holds after a full collection is what a leak would grow.
 */
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'

interface Pending {
  resolve(v: Record<string, unknown>): void
  reject(e: Error): void
}

export interface HeapFigures {
  /** V8 heap in use after a full collection. */
  heapUsed: number
  /** Memory outside the V8 heap that JS objects hold (Buffers, ArrayBuffers), after the collection. */
  external: number
  arrayBuffers: number
  /** The V8 heap the process has reserved (used + free pages it keeps). */
  heapTotal: number
  rss: number
}

export class Inspector {
  readonly #ws: WebSocket
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #chunkSink: ((chunk: string) => void) | null = null

  private constructor(ws: WebSocket) {
    this.#ws = ws
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: { chunk?: string } }
      if (msg.method === 'HeapProfiler.addHeapSnapshotChunk') {
        this.#chunkSink?.(msg.params?.chunk ?? '')
        return
      }
      if (msg.id === undefined) return
      const p = this.#pending.get(msg.id)
      if (p === undefined) return
      this.#pending.delete(msg.id)
      if (msg.error !== undefined) p.reject(new Error(msg.error.message))
      else p.resolve(msg.result ?? {})
    })
    ws.addEventListener('close', () => {
      for (const p of this.#pending.values()) p.reject(new Error('inspector connection closed'))
      this.#pending.clear()
    })
  }

  /** Connects to the `ws://` address the process printed ("Debugger listening on ws://..."). */
  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url)
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true })
      ws.addEventListener('error', () => reject(new Error(`inspector: cannot connect to ${url}`)), { once: true })
    })
    return new Inspector(ws)
  }

  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`inspector: ${method} took over ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      this.#ws.send(JSON.stringify({ id, method, params }))
    })
  }

  async #evaluate(expression: string): Promise<unknown> {
    const r = (await this.call('Runtime.evaluate', { expression, returnByValue: true })) as { result?: { value?: unknown }; exceptionDetails?: unknown }
    if (r.exceptionDetails !== undefined) throw new Error(`inspector: ${expression} threw`)
    return r.result?.value
  }

  /**
   * Full collections until the heap stops shrinking (a collection can free what finalizers of
   * the previous one released), then the figures.
   */
  async collectAndMeasure(): Promise<HeapFigures> {
    let last = Number.POSITIVE_INFINITY
    let figures: HeapFigures | null = null
    for (let i = 0; i < 4; i++) {
      await this.call('HeapProfiler.collectGarbage')
      figures = JSON.parse(String(await this.#evaluate('JSON.stringify(process.memoryUsage())'))) as HeapFigures
      if (figures.heapUsed >= last * 0.995) break
      last = figures.heapUsed
    }
    return figures!
  }

  /** Writes a heap snapshot (Chrome DevTools format) to `path`. */
  async snapshot(path: string): Promise<void> {
    const out = createWriteStream(path)
    this.#chunkSink = (chunk) => out.write(chunk)
    try {
      await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 300_000)
    } finally {
      this.#chunkSink = null
      out.end()
      await once(out, 'close')
    }
  }

  close(): void {
    this.#ws.close()
  }
}
