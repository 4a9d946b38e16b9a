/**
 * Worker thread running the embedded model, so a 10 ms inference never blocks the event loop
 * that serves requests. Requests that arrive together are embedded as one batch.
 */
import { parentPort } from 'node:worker_threads'
import { loadUseModel, type UseModel } from './use-model.ts'

interface Job {
  readonly id: number
  readonly text: string
}

const MAX_BATCH = 16
const port = parentPort
if (port === null) throw new Error('local-embedder-worker must run in a worker thread')

const queue: Job[] = []
let model: UseModel | null = null
let running = false

async function drain(): Promise<void> {
  if (running || model === null) return
  running = true
  while (queue.length > 0) {
    const batch = queue.splice(0, MAX_BATCH)
    try {
      const vectors = await model.embedBatch(batch.map((j) => j.text))
      batch.forEach((j, i) => {
        const v = vectors[i]!
        port!.postMessage({ id: j.id, vector: v }, [v.buffer as ArrayBuffer])
      })
    } catch (err) {
      for (const j of batch) port!.postMessage({ id: j.id, error: (err as Error).message })
    }
  }
  running = false
}

port.on('message', (job: Job) => {
  queue.push(job)
  if (!running) setImmediate(drain)
})

loadUseModel().then(
  (m) => {
    model = m
    port.postMessage({ ready: true, id: m.id })
    void drain()
  },
  (err: Error) => port.postMessage({ fatal: err.message }),
)
