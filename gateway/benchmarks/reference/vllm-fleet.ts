/**
 * N vLLM-mode simulators in one process (one "GPU pod" each, own port, own engine and KV cache),
 * so a routing benchmark with 8 pods costs one event loop instead of eight processes:
 *
 *   npx node gateway/benchmarks/reference/vllm-fleet.ts --pods 8 --model llm --tokens 24
 *     --vllm '{"maxBatch":16}' [--slow '{"7":{"stepMs":30}}']
 *
 * `--slow` merges per-pod engine settings over `--vllm` (pod index -> settings). Prints
 * `{"event":"listening","urls":[...]}` once every pod listens; exits 0 on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util'
import { startSimulator, type Simulator, type VllmOptions } from '../../src/simulator/server.ts'

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '8' },
    model: { type: 'string', default: 'llm' },
    tokens: { type: 'string', default: '24' },
    vllm: { type: 'string', default: '{}' },
    slow: { type: 'string', default: '{}' },
  },
  strict: true,
})

const base = JSON.parse(values.vllm) as VllmOptions
const slow = JSON.parse(values.slow) as Record<string, VllmOptions>
const pods = Number(values.pods)
const sims: Simulator[] = []
for (let i = 0; i < pods; i++) {
  sims.push(await startSimulator({ models: [values.model], tokens: Number(values.tokens), vllm: { ...base, ...slow[String(i)] } }))
}
process.stdout.write(JSON.stringify({ event: 'listening', urls: sims.map((s) => s.url) }) + '\n')

let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  void Promise.all(sims.map((s) => s.close())).then(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
