/**
 * The fault matrix: a real gateway process in front of two simulator processes (a, b), with one
 * fault at a time injected into `a` (or both) under load; then Redis killed under load (a real
 * redis-server), config reloads under load, and SIGTERM under load. Upstream faults may produce
 * 5xx, but every answer must be OpenAI-shaped, complete or visibly failed, and none may hang.
 */
import { writeFileSync } from 'node:fs'
import { drive, percentile, type LoadResult } from './lib/load.ts'
import { restartRedis, startGatewayProc, startRedis, startSimulatorProc, type GatewayProc, type Proc, type SimulatorProc } from './lib/procs.ts'
import { example, newReport, sampleAfter, sampleBefore, type PhaseReport } from './lib/report.ts'
import { Rng } from './lib/rng.ts'
import { chatRequest, emptyLoad, sendOne } from './lib/load.ts'

const HANG_MS = 15_000
const SIM_ARGS = ['--tokens', '12', '--inter-token-ms', '2']

function upstreamYaml(name: string, url: string): string {
  return `  - { name: ${name}, url: ${url}, models: ["*"], pool: { warm: 2 }, timeouts: { connectMs: 500, firstByteMs: 1500, idleMs: 1000, totalMs: 20000 } }`
}

function gatewayYaml(upstreams: string[], extra = ''): string {
  return `
server: { host: 127.0.0.1, port: 0, requestTimeoutMs: 10000, shutdownTimeoutMs: 10000 }
log: { level: info }
upstreams:
${upstreams.join('\n')}
routing:
  retry: { maxAttempts: 3, budgetRatio: 1, budgetMinPerSecond: 1000 }
  health: { intervalMs: 500 }
  outlier: { consecutiveFailures: 5, baseEjectionMs: 1000, maxEjectionMs: 2000 }
${extra}`
}

/** Folds a load result into a phase report; `allowCut`: mid-response failures are the fault under test. */
function fold(report: PhaseReport, load: LoadResult, opts: { minOk: number; allowVisibleFailures: boolean }): void {
  report.requests += load.requests
  report.hangs += load.hangs
  report.nonShaped += load.verdicts.bad
  for (const e of load.examples) example(report, e)
  const okShare = load.requests === 0 ? 0 : load.verdicts.ok / load.requests
  Object.assign(report.figures, {
    ok: load.verdicts.ok,
    'OpenAI-shaped errors': load.verdicts.error,
    'streams ended by an error event': load.verdicts['stream-error'],
    'bodies cut': load.verdicts.cut,
    'no answer': load.noAnswer,
    'gateway 5xx (upstream fault)': load.gateway5xx,
    statuses: JSON.stringify(load.statuses),
    codes: JSON.stringify(load.codes),
    'p50 ms': percentile(load.latenciesMs, 50).toFixed(1),
    'p99 ms': percentile(load.latenciesMs, 99).toFixed(1),
    'max ms': percentile(load.latenciesMs, 100).toFixed(1),
  })
  if (okShare < opts.minOk) report.violations.push(`${(okShare * 100).toFixed(1)}% succeeded, expected at least ${opts.minOk * 100}%`)
  if (!opts.allowVisibleFailures && load.verdicts.cut + load.verdicts['stream-error'] > 0) report.violations.push('responses failed mid-way although a healthy upstream was there to fail over to')
  if (load.noAnswer > 0) report.violations.push(`${load.noAnswer} requests got no answer at all`)
}

function checkAlive(report: PhaseReport, gw: GatewayProc): void {
  if (gw.proc.exitStatus !== null && !gw.proc.stopping) {
    report.crashes++
    example(report, `gateway exited (${gw.proc.exitStatus}): ${gw.proc.logs().slice(-1_500)}`)
  }
}

interface Fault {
  name: string
  apply(a: SimulatorProc, b: SimulatorProc): Promise<void>
  minOk: number
  allowVisibleFailures: boolean
}

const FAULTS: Fault[] = [
  { name: 'a refuses connections', apply: async (a) => void (await a.proc.stop()), minOk: 0.98, allowVisibleFailures: false },
  { name: 'a resets before answering', apply: (a) => a.setFaults({ resetBeforeHeaders: true }), minOk: 0.98, allowVisibleFailures: false },
  { name: 'a: burst of 500s', apply: (a) => a.setFaults({ status: 500, statusCount: 150 }), minOk: 0.98, allowVisibleFailures: false },
  { name: 'a: burst of 429s', apply: (a) => a.setFaults({ status: 429, statusCount: 150, retryAfterSeconds: 1 }), minOk: 0.98, allowVisibleFailures: false },
  { name: 'a stalls before its headers', apply: (a) => a.setFaults({ stallBeforeHeadersMs: 5_000 }), minOk: 0.98, allowVisibleFailures: false },
  { name: 'a: error event first', apply: (a) => a.setFaults({ errorEventFirst: true }), minOk: 0.98, allowVisibleFailures: false },
  { name: 'a dies mid-stream', apply: (a) => a.setFaults({ resetAfterChunks: 3 }), minOk: 0.3, allowVisibleFailures: true },
  { name: 'a hangs mid-stream', apply: (a) => a.setFaults({ hangAfterChunks: 3 }), minOk: 0.3, allowVisibleFailures: true },
  { name: 'a and b answer 503', apply: async (a, b) => { await a.setFaults({ status: 503, retryAfterSeconds: 2 }); await b.setFaults({ status: 503, retryAfterSeconds: 2 }) }, minOk: 0, allowVisibleFailures: false },
]

async function upstreamMatrix(seed: number, log: (r: PhaseReport) => void): Promise<void> {
  let a = await startSimulatorProc('sim-a', SIM_ARGS)
  const b = await startSimulatorProc('sim-b', SIM_ARGS)
  const gw = await startGatewayProc(gatewayYaml([upstreamYaml('a', a.url), upstreamYaml('b', b.url)], 'cache: { enabled: false }'))
  try {
    for (const fault of FAULTS) {
      const report = newReport(`fault: ${fault.name}`)
      const started = performance.now()
      sampleBefore(report, gw.proc)
      await fault.apply(a, b)
      const load = await drive(gw.port, new Rng(seed), { requests: 300, concurrency: 16, streamShare: 0.5, hangMs: HANG_MS })
      fold(report, load, fault)
      if (a.proc.exitStatus !== null) a = await startSimulatorProc('sim-a', SIM_ARGS, a.port)
      await a.clearFaults()
      await b.clearFaults()
      // Ejections end and connections settle before the next fault and the fd count.
      await new Promise((r) => setTimeout(r, 2_500))
      sampleAfter(report, gw.proc)
      checkAlive(report, gw)
      if (report.fdsAfter > report.fdsBefore + 64) report.violations.push(`file descriptors grew from ${report.fdsBefore} to ${report.fdsAfter}`)
      report.ms = performance.now() - started
      log(report)
      if (gw.proc.exitStatus !== null) break
    }
  } finally {
    await gw.proc.stop()
    await a.proc.stop()
    await b.proc.stop()
  }
}

async function redisKilled(seed: number): Promise<PhaseReport> {
  const report = newReport('fault: redis-server killed under load, then restarted')
  const started = performance.now()
  const sim = await startSimulatorProc('sim', SIM_ARGS)
  let redis = await startRedis()
  const gw = await startGatewayProc(gatewayYaml([upstreamYaml('sim', sim.url)], `redis: { url: "${redis.url}", commandTimeoutMs: 50 }\ncache: { enabled: true, backend: redis }`))
  let redisProc: Proc = redis.proc
  try {
    sampleBefore(report, gw.proc)
    const load = await drive(gw.port, new Rng(seed), {
      requests: 900,
      concurrency: 16,
      streamShare: 0.3,
      hangMs: HANG_MS,
      cacheable: true,
      during: async (i) => {
        if (i === 300) redisProc.signal('SIGKILL')
        if (i === 600) redisProc = await restartRedis(redis.port)
      },
    })
    fold(report, load, { minOk: 0.99, allowVisibleFailures: false })
    report.figures['cache hits after restart'] = (await fetch(`${gw.url}/metrics`).then((r) => r.text())).match(/^velox_cache_[a-z_]*hits?[a-z_]*\{[^}]*\} \d+/gm)?.length ?? 0
    sampleAfter(report, gw.proc)
    checkAlive(report, gw)
  } finally {
    await gw.proc.stop()
    await sim.proc.stop()
    await redisProc.stop()
    redis = { ...redis, proc: redisProc }
  }
  report.ms = performance.now() - started
  return report
}

async function reloads(seed: number): Promise<PhaseReport> {
  const report = newReport('reload: config rewritten and SIGHUP under load')
  const started = performance.now()
  const a = await startSimulatorProc('sim-a', SIM_ARGS)
  const b = await startSimulatorProc('sim-b', SIM_ARGS)
  const both = gatewayYaml([upstreamYaml('a', a.url), upstreamYaml('b', b.url)], 'cache: { enabled: false }')
  const onlyA = gatewayYaml([upstreamYaml('a', a.url)], 'cache: { enabled: false }')
  const gw = await startGatewayProc(both)
  let reloadsSent = 0
  try {
    sampleBefore(report, gw.proc)
    const load = await drive(gw.port, new Rng(seed), {
      requests: 900,
      concurrency: 16,
      streamShare: 0.5,
      hangMs: HANG_MS,
      during: (i) => {
        if (i > 0 && i % 100 === 0) {
          writeFileSync(gw.configPath, reloadsSent % 2 === 0 ? onlyA : both)
          gw.proc.signal('SIGHUP')
          reloadsSent++
        }
      },
    })
    fold(report, load, { minOk: 1, allowVisibleFailures: false })
    report.figures['reloads sent'] = reloadsSent
    report.figures['reloads applied'] = (gw.proc.logs().match(/"msg":"config reloaded"/g) ?? []).length
    sampleAfter(report, gw.proc)
    checkAlive(report, gw)
  } finally {
    await gw.proc.stop()
    await a.proc.stop()
    await b.proc.stop()
  }
  report.ms = performance.now() - started
  return report
}

async function sigterm(seed: number): Promise<PhaseReport> {
  const report = newReport('SIGTERM under load: drain')
  const started = performance.now()
  // Streams of about 2 s: still running when the signal comes.
  const sim = await startSimulatorProc('sim', ['--tokens', '40', '--inter-token-ms', '50'])
  const gw = await startGatewayProc(gatewayYaml([upstreamYaml('sim', sim.url).replace('idleMs: 1000', 'idleMs: 5000')], 'cache: { enabled: false }').replace('shutdownTimeoutMs: 10000', 'shutdownTimeoutMs: 10000, shutdownDelayMs: 1500'))
  const rng = new Rng(seed)
  try {
    sampleBefore(report, gw.proc)
    const before = emptyLoad()
    const inflight = Array.from({ length: 40 }, () => sendOne(gw.port, chatRequest(rng, { stream: true }), before, HANG_MS))
    await new Promise((r) => setTimeout(r, 300))
    const signalledAt = performance.now()
    gw.proc.stopping = true
    gw.proc.signal('SIGTERM')
    // New requests during the drain delay: the listener still accepts and they are served.
    const during = emptyLoad()
    const late: Promise<void>[] = []
    while (performance.now() - signalledAt < 1_000) {
      late.push(sendOne(gw.port, chatRequest(rng, { stream: false }), during, HANG_MS))
      await new Promise((r) => setTimeout(r, 50))
    }
    await Promise.all([...inflight, ...late])
    const exit = await Promise.race([gw.proc.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))])
    fold(report, before, { minOk: 1, allowVisibleFailures: false })
    report.requests += during.requests
    report.hangs += during.hangs
    report.nonShaped += during.verdicts.bad
    report.figures['streams in flight at SIGTERM'] = before.requests
    report.figures['requests sent during the drain delay'] = during.requests
    report.figures['... served'] = during.verdicts.ok
    report.figures['... refused or unanswered'] = during.noAnswer
    report.figures['exit'] = String(exit)
    report.figures['exit after SIGTERM ms'] = Math.round(performance.now() - signalledAt)
    if (exit !== 0) report.violations.push(`the gateway exited with ${String(exit)}, expected 0`)
    if (during.verdicts.ok < during.requests) report.violations.push(`${during.requests - during.verdicts.ok} requests sent during the drain delay were not served`)
  } finally {
    await gw.proc.stop()
    await sim.proc.stop()
  }
  report.ms = performance.now() - started
  return report
}

/** Runs every fault phase, handing each report to `log` as it completes; a phase that throws fails. */
export async function runFaults(log: (r: PhaseReport) => void, seed = 7, only: ReadonlySet<string> | null = null): Promise<void> {
  const phases: Array<[string, string, () => Promise<PhaseReport[]>]> = [
    ['matrix', 'upstream fault matrix', () => upstreamMatrix(seed, log).then(() => [])],
    ['redis', 'redis-server killed', async () => [await redisKilled(seed)]],
    ['reload', 'reload under load', async () => [await reloads(seed)]],
    ['sigterm', 'SIGTERM under load', async () => [await sigterm(seed)]],
  ]
  for (const [key, name, run] of phases) {
    if (only !== null && !only.has(key)) continue
    try {
      for (const r of await run()) log(r)
    } catch (err) {
      const r = newReport(name)
      r.violations.push(`the phase could not run: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`)
      log(r)
    }
  }
}
