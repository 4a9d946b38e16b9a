/**
 * Runs the simulator as its own process (benchmarks, manual runs):
 *   node gateway/src/simulator/main.ts [--host H] [--port P] [--ttft-ms N] [--inter-token-ms N]
 *     [--tokens N] [--embedding-dim N] [--models a,b]
 * Prints one JSON line `{"event":"listening","url":...}` once it accepts connections; exits 0
 * after closing on SIGTERM or SIGINT. Faults are driven over HTTP via `/_sim/faults`.
 */

import { parseArgs } from 'node:util'
import { startSimulator } from './server.ts'

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n)) throw new TypeError(`--${name} must be a number, got "${value}"`)
  return n
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
