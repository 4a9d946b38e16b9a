/** IPC between the primary and its workers: a worker asks for cluster-wide metrics text. */
import cluster from 'node:cluster'

export interface MetricsRequest {
  type: 'velox:metrics:get'
  id: number
}

export interface MetricsReply {
  type: 'velox:metrics:reply'
  id: number
  text?: string
  error?: string
}

export function isMetricsRequest(msg: unknown): msg is MetricsRequest {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'velox:metrics:get'
}

function isMetricsReply(msg: unknown): msg is MetricsReply {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'velox:metrics:reply'
}

let nextId = 0
const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>()
let listening = false

/** Metrics of every worker, summed by the primary. Only valid in a cluster worker. */
export function clusterMetrics(timeoutMs = 3_000): Promise<string> {
  if (!cluster.isWorker || process.send === undefined) return Promise.reject(new Error('not a cluster worker'))
  if (!listening) {
    listening = true
    process.on('message', (msg: unknown) => {
      if (!isMetricsReply(msg)) return
      const w = waiting.get(msg.id)
      if (w === undefined) return
      waiting.delete(msg.id)
      clearTimeout(w.timer)
      if (msg.text !== undefined) w.resolve(msg.text)
      else w.reject(new Error(msg.error ?? 'metrics aggregation failed'))
    })
  }
  const id = ++nextId
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id)
      reject(new Error('the primary did not answer the metrics request'))
    }, timeoutMs)
    waiting.set(id, { resolve, reject, timer })
    process.send!({ type: 'velox:metrics:get', id } satisfies MetricsRequest)
  })
}
