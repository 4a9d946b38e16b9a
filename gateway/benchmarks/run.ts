/**
 * `npm run bench`: starts the simulator, the gateway and the naive reference proxy pinned to
 * cores, runs the scenarios against all three, prints a table with PASS/FAIL against the latency
 * budgets and writes bench-results/<timestamp>.json. Every process it starts is stopped by PID,
 * also on failure and Ctrl-C.
 *
 *   npx node gateway/benchmarks/run.ts [--quick] [--only NAME[,NAME]] [--gateway-node-args "FLAGS"]
 *                                      [--rate N] [--gateway FILE] [--baseline-gateway FILE] [--baseline-node-args "FLAGS"]
 *                                      [--simulator FILE] [--list]
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, release, tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { interferenceBetween, sampleCpu } from './lib/interference.ts'
import { pinSelf, ProcessSet } from './lib/processes.ts'
import { formatScenario, formatSummary } from './lib/report.ts'
import { NOISY_MACHINE_CORES, ScenarioSkipped, type BenchContext, type BenchOptions, type CorePlan, type ScenarioResult } from './lib/scenario.ts'
import { SharedStacks } from './lib/shared-stack.ts'
import { REPO_ROOT, resetGcWindows } from './lib/targets.ts'
import { pendingScenarios, scenarios } from './scenarios/index.ts'

const USAGE = `usage: npm run bench -- [options]
  --quick                     ~1 minute smoke run (default: full run, under ~4 minutes)
  --only NAME[,NAME]          run only these scenarios (see --list)
  --gateway-node-args "ARGS"  node/V8 flags for the gateway, e.g. "--max-semi-space-size=64";
                              include --trace-gc to measure GC from V8's own trace
  --rate N                    arrival rate of the fixed-rate scenario (default 1000 req/s)
  --gateway FILE              gateway entry point (default gateway/src/main.ts)
  --baseline-gateway FILE     another checkout's gateway entry point, measured beside --gateway in
                              the same rounds where a scenario supports it (cache-hit, and every
                              scenario on the standard stack: one-at-a-time, fixed-rate, streaming,
                              body-size, anthropic-stream, and max-throughput, as a baseline-gateway row)
  --baseline-node-args "ARGS" node/V8 flags for the baseline gateway only (after --gateway-node-args);
                              without --baseline-gateway the baseline runs this checkout's gateway,
                              e.g. --baseline-node-args "--v8-pool-size=1": one flag, A/B in one run
  --simulator FILE            simulator entry point (default gateway/src/simulator/main.ts)
  --list                      list scenarios and exit`

interface Cli {
  options: BenchOptions
  only: string[] | null
  list: boolean
}

function parseCli(argv: string[]): Cli {
  const options: BenchOptions = {
    quick: false,
    gatewayNodeArgs: [],
    ratePerSecond: 1000,
    gatewayEntry: join(REPO_ROOT, 'gateway/src/main.ts'),
    simulatorEntry: join(REPO_ROOT, 'gateway/src/simulator/main.ts'),
    baselineGatewayEntry: null,
    baselineNodeArgs: [],
  }
  let only: string[] | null = null
  let list = false
  // Hand-rolled because values such as "--max-semi-space-size=64" start with dashes.
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes('=') && arg.startsWith('--') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const value = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new UsageError(`${flag} needs a value`)
      return v
    }
    switch (flag) {
      case '--quick':
        options.quick = true
        break
      case '--only':
        only = value().split(',').map((s) => s.trim()).filter(Boolean)
        break
      case '--gateway-node-args':
        options.gatewayNodeArgs = value().split(/\s+/).filter(Boolean)
        break
      case '--rate':
        options.ratePerSecond = Number(value())
        if (!(options.ratePerSecond > 0)) throw new UsageError('--rate must be a positive number')
        break
      case '--gateway':
        options.gatewayEntry = resolve(value())
        break
      case '--baseline-gateway':
        options.baselineGatewayEntry = resolve(value())
        break
      case '--baseline-node-args':
        options.baselineNodeArgs = value().split(/\s+/).filter(Boolean)
        break
      case '--simulator':
        options.simulatorEntry = resolve(value())
        break
      case '--list':
        list = true
        break
      case '--help':
      case '-h':
        console.log(USAGE)
        process.exit(0)
        break
      default:
        throw new UsageError(`unknown option ${arg}`)
    }
  }
  // Flags alone make a baseline of this checkout's gateway: the same code with and without them.
  if (options.baselineNodeArgs.length > 0 && options.baselineGatewayEntry === null) options.baselineGatewayEntry = options.gatewayEntry
  return { options, only, list }
}

class UsageError extends Error {}

const NO_INTERFERENCE = { otherCores: 0, stealCores: 0 }

function corePlan(): CorePlan {
  const count = availableParallelism()
  if (count < 2) return { loadGenerator: null, gateway: null, all: null }
  return { loadGenerator: '0', gateway: String(count - 1), all: `0-${count - 1}` }
}

function gitDescribe(): { commit: string; dirty: boolean } | null {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
    const status = execFileSync('git', ['status', '--porcelain', '--', 'gateway'], { cwd: REPO_ROOT, encoding: 'utf8' })
    return { commit, dirty: status.trim().length > 0 }
  } catch {
    return null
  }
}

async function main(): Promise<number> {
  let cli: Cli
  try {
    cli = parseCli(process.argv.slice(2))
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`${error.message}\n${USAGE}`)
    return 2
  }
  if (cli.list) {
    for (const s of scenarios) console.log(`${s.name.padEnd(24)} ${s.title}\n${' '.repeat(25)}${s.description}`)
    console.log(`${CACHE_COMPONENTS.padEnd(24)} Cache components (in-process)\n${' '.repeat(25)}exact lookup, semantic index search at 10k/100k entries, embedding latency, paraphrase precision and hit rate`)
    for (const p of pendingScenarios) console.log(`${p.name.padEnd(24)} pending: ${p.title} (waiting for ${p.waitingFor})`)
    return 0
  }
  const unknown = (cli.only ?? []).filter((name) => name !== CACHE_COMPONENTS && !scenarios.some((s) => s.name === name) && !pendingScenarios.some((p) => p.name === name))
  if (unknown.length > 0) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}; see --list`)
    return 2
  }
  const selected = scenarios.filter((s) => cli.only === null || cli.only.includes(s.name))
  const pending = pendingScenarios.filter((p) => cli.only === null || cli.only.includes(p.name))
  const { options } = cli

  for (const [what, file] of [['gateway', options.gatewayEntry], ['simulator', options.simulatorEntry], ['baseline gateway', options.baselineGatewayEntry ?? options.gatewayEntry]] as const) {
    if (!existsSync(file)) {
      console.error(`${what} entry point not found: ${relative(process.cwd(), file)}`)
      return 1
    }
  }

  const cores = corePlan()
  if (cores.loadGenerator !== null) await pinSelf(cores.loadGenerator)
  else console.warn('fewer than 2 cores: running unpinned; numbers will be noisy')

  const started = new Date()
  const workRoot = mkdtempSync(join(tmpdir(), 'velox-bench-'))
  console.log(`Velox benchmark ${options.quick ? '(quick)' : '(full)'}: ${selected.map((s) => s.name).join(', ') || 'nothing to run'}`)
  console.log(`cores: load generator and wrk on ${cores.loadGenerator ?? '-'}, gateway and naive proxy on ${cores.gateway ?? '-'}, simulator per scenario (${cpus()[0]?.model ?? 'unknown cpu'})`)
  if (options.gatewayNodeArgs.length > 0) console.log(`gateway node args: ${options.gatewayNodeArgs.join(' ')}`)
  if (options.baselineGatewayEntry !== null) console.log(`baseline gateway: ${relative(process.cwd(), options.baselineGatewayEntry)}${options.baselineNodeArgs.length > 0 ? ` with ${options.baselineNodeArgs.join(' ')}` : ''}`)

  // Processes shared by several scenarios live in the run's own set, stopped when the run ends.
  const runProcesses = new ProcessSet()
  active.add(runProcesses)
  const sharedDir = join(workRoot, 'shared')
  mkdirSync(sharedDir)
  const shared = new SharedStacks({ options, cores, processes: runProcesses, workDir: sharedDir, log: (m) => console.log(`  ${m}`) })
  const livePids = (): number[] => [...active].flatMap((set) => set.pids())

  const results: ScenarioResult[] = []
  for (const scenario of selected) {
    const processes = new ProcessSet()
    active.add(processes)
    const workDir = join(workRoot, scenario.name)
    mkdirSync(workDir)
    const ctx: BenchContext = { options, cores, processes, workDir, shared, log: (m) => console.log(`  [${scenario.name}] ${m}`) }
    resetGcWindows()
    const cpuBefore = sampleCpu(livePids())
    const t0 = performance.now()
    const base = { name: scenario.name, title: scenario.title, description: scenario.description }
    let result: ScenarioResult
    console.log(`\nrunning ${scenario.name} ...`)
    try {
      const measured = await scenario.run(ctx)
      result = { ...base, ...measured, durationMs: performance.now() - t0, interference: NO_INTERFERENCE, error: null, skipped: null }
    } catch (error) {
      const skipped = error instanceof ScenarioSkipped ? error.message : null
      const failure = skipped === null ? ((error as Error).stack ?? String(error)) : null
      result = { ...base, parameters: {}, rows: [], checks: [], notes: [], durationMs: performance.now() - t0, interference: NO_INTERFERENCE, error: failure, skipped }
    } finally {
      await processes.stopAll()
      active.delete(processes)
    }
    result.interference = interferenceBetween(cpuBefore, sampleCpu(livePids()))
    const noisy = result.interference.otherCores + result.interference.stealCores >= NOISY_MACHINE_CORES
    for (const c of result.checks) c.noisy = noisy
    results.push(result)
    console.log(formatScenario(result))
  }
  await runProcesses.stopAll()
  active.delete(runProcesses)
  rmSync(workRoot, { recursive: true, force: true })

  console.log(formatSummary(results, pending))
  const file = writeResults(started, options, cores, results, pending)
  console.log(`\nresults: ${relative(process.cwd(), file)}`)
  const cacheOk = cli.only === null || cli.only.includes(CACHE_COMPONENTS) ? runCacheComponents(options.quick, file) : true
  return results.some((r) => r.error !== null) || !cacheOk ? 1 : 0
}

function writeResults(started: Date, options: BenchOptions, cores: CorePlan, results: ScenarioResult[], pending: typeof pendingScenarios): string {
  const dir = join(REPO_ROOT, 'bench-results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`)
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  const report = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    version: pkg.version,
    git: gitDescribe(),
    machine: { cpu: cpus()[0]?.model ?? null, cores: cpus().length, kernel: release(), node: process.version },
    options: { ...options, gatewayEntry: relative(REPO_ROOT, options.gatewayEntry), simulatorEntry: relative(REPO_ROOT, options.simulatorEntry), baselineGatewayEntry: options.baselineGatewayEntry === null ? null : relative(REPO_ROOT, options.baselineGatewayEntry) },
    cores,
    results,
    pending,
  }
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`)
  return file
}

/**
 * The cache's own components, measured in-process by gateway/benchmarks/micro/cache.ts: exact lookup,
 * semantic index search at 10k (and 100k without --quick) entries, embedding latency, and
 * precision/hit rate on the labelled paraphrase set.
 */
const CACHE_COMPONENTS = 'cache-components'

function runCacheComponents(quick: boolean, resultsFile: string): boolean {
  console.log(`\nrunning ${CACHE_COMPONENTS} ...`)
  const out = resultsFile.replace(/\.json$/, '-cache.json')
  const args = [join(REPO_ROOT, 'gateway/benchmarks/micro/cache.ts'), '--out', out, ...(quick ? ['--quick'] : [])]
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', timeout: 300_000 })
  if (r.status !== 0) console.log(`  ${CACHE_COMPONENTS} failed (exit ${r.status ?? r.signal})`)
  return r.status === 0
}

/** Process sets of scenarios still running, stopped on Ctrl-C and on any way out. */
const active = new Set<ProcessSet>()

function stopEverythingAndExit(code: number): void {
  void Promise.all([...active].map((set) => set.stopAll())).finally(() => process.exit(code))
}
process.once('SIGINT', () => stopEverythingAndExit(130))
process.once('SIGTERM', () => stopEverythingAndExit(143))
process.once('exit', () => {
  for (const set of active) set.killAllNow()
})

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error)
    stopEverythingAndExit(1)
  },
)
