/**
 * `npm run chaos`: the fuzz phase, the fault matrix and a short soak against real processes (the
 * gateway's own main.ts, simulator processes, redis-server), each judged on crashes, gateway 5xx
 * from client input, hangs, non-OpenAI-shaped answers, RSS and file descriptors.
 *
 *   npm run chaos -- [--only fuzz,clients,probes,faults,soak] [--faults matrix,redis,reload,sigterm] [--seed N]
 *     [--requests N] [--soak-seconds N] [--json FILE] [--heap-snapshots DIR] [--gateway-node-args=--trace-gc]
 *
 * Exits 1 when any phase fails its thresholds. Every process it starts is stopped by PID.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { runClients } from './clients.ts'
import { runFaults } from './faults.ts'
import { runFuzz } from './fuzz.ts'
import { runProbes } from './probes.ts'
import { gatewayNodeArgs, killAll, startGatewayProc, startSimulatorProc } from './lib/procs.ts'
import { formatTable, passed, setSnapshotDir, type PhaseReport } from './lib/report.ts'
import { runSoak } from './soak.ts'

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    seed: { type: 'string' },
    requests: { type: 'string' },
    'soak-seconds': { type: 'string' },
    json: { type: 'string' },
    faults: { type: 'string' },
    'heap-snapshots': { type: 'string' },
    'gateway-node-args': { type: 'string' },
  },
})
const only = new Set((values.only ?? 'fuzz,clients,probes,faults,soak').split(','))
const seed = Number(values.seed ?? 20261201)
const requests = Number(values.requests ?? 10_000)
const soakSeconds = Number(values['soak-seconds'] ?? 60)
if (values['heap-snapshots'] !== undefined) setSnapshotDir(values['heap-snapshots'])
if (values['gateway-node-args'] !== undefined) gatewayNodeArgs.push(...values['gateway-node-args'].split(' ').filter((a) => a !== ''))

export const FUZZ_CONFIG = (simUrl: string): string => `
server: { host: 127.0.0.1, port: 0, requestTimeoutMs: 5000, shutdownTimeoutMs: 5000 }
log: { level: info }
upstreams:
  - { name: sim, url: ${simUrl}, models: ["*"], pool: { warm: 2 } }
routing: { health: { intervalMs: 1000 } }
cache: { enabled: true }
`

async function main(): Promise<void> {
  const reports: PhaseReport[] = []
  const log = (r: PhaseReport): void => {
    reports.push(r)
    process.stdout.write(`\n## ${r.name}: ${passed(r) ? 'pass' : 'FAIL'} (${(r.ms / 1000).toFixed(1)} s)\n`)
    for (const [k, v] of Object.entries(r.figures)) process.stdout.write(`  ${k}: ${v}\n`)
    for (const v of r.violations) process.stdout.write(`  VIOLATION: ${v}\n`)
    for (const e of r.examples) process.stdout.write(`  example: ${e}\n`)
  }
  if (only.has('fuzz') || only.has('clients')) {
    const sim = await startSimulatorProc('simulator', ['--tokens', '8'])
    const gw = await startGatewayProc(FUZZ_CONFIG(sim.url), {}, { inspect: true })
    try {
      if (only.has('fuzz')) log(await runFuzz({ gateway: gw, seed, requests, concurrency: 32, hangMs: 15_000 }))
      if (only.has('clients')) log(await runClients({ gateway: gw, requestTimeoutMs: 5_000 }))
    } finally {
      await gw.proc.stop()
      await sim.proc.stop()
    }
  }
  if (only.has('probes')) await runProbes(log)
  if (only.has('faults')) await runFaults(log, 7, values.faults === undefined ? null : new Set(values.faults.split(',')))
  if (only.has('soak')) log(await runSoak({ seconds: soakSeconds }))
  const table = formatTable(reports)
  process.stdout.write(`\n${table}\n`)
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(reports, null, 2))
  const ok = reports.every(passed)
  process.stdout.write(ok ? '\nchaos: every phase passed\n' : '\nchaos: FAILED\n')
  process.exitCode = ok ? 0 : 1
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  })
  .finally(killAll)
