/**
 * Runs the simulator as its own process (benchmarks, manual runs):
 *   npx node gateway/src/simulator/main.ts [--host H] [--port P] [--ttft-ms N] [--inter-token-ms N]
 *     [--tokens N] [--embedding-dim N] [--models a,b] [--vllm] [--vllm-options JSON]
 * Prints one JSON line `{"event":"listening","url":...}` once it accepts connections; exits 0
 * after closing on SIGTERM or SIGINT. Faults are driven over HTTP via `/_sim/faults`.
 */

import { parseArgs } from 'node:util'
import { type VllmOptions, startSimulator } from './server.ts'

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n)) throw new TypeError(`--${name} must be a number, got "${value}"`)
  return n
}

function vllmOptions(enabled: boolean | undefined, json: string | undefined): VllmOptions | undefined {
  if (json === undefined) return enabled === true ? {} : undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch (err) {
    throw new TypeError(`--vllm-options must be JSON: ${(err as Error).message}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new TypeError('--vllm-options must be a JSON object')
  return parsed as VllmOptions
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'ttft-ms': { type: 'string' },
      'inter-token-ms': { type: 'string' },
      tokens: { type: 'string' },
      'embedding-dim': { type: 'string' },
      models: { type: 'string' },
      vllm: { type: 'boolean' },
      'vllm-options': { type: 'string' },
    },
    strict: true,
  })
  const sim = await startSimulator({
    host: values.host,
    port: number('port', values.port),
    ttftMs: number('ttft-ms', values['ttft-ms']),
    interTokenMs: number('inter-token-ms', values['inter-token-ms']),
    tokens: number('tokens', values.tokens),
    embeddingDim: number('embedding-dim', values['embedding-dim']),
    models: values.models?.split(',').map((m) => m.trim()).filter((m) => m !== ''),
    vllm: vllmOptions(values.vllm, values['vllm-options']),
  })
  process.stdout.write(JSON.stringify({ event: 'listening', url: sim.url }) + '\n')

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    sim.close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`simulator: close failed: ${String(err)}\n`)
      process.exit(1)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err: unknown) => {
  process.stderr.write(`simulator: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
