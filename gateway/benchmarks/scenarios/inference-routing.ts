/**
 * Inference-aware routing against the other balancers on simulated vLLM pods: 8 pods (one
 * process, vLLM mode: continuous batching, paged KV cache with prefix caching, chunked prefill),
 * one gateway per balancer, the same open-loop workload replayed through each from cold caches.
 *
 * Workloads (each run against round robin, P2C + peak-EWMA, consistent hash on the session
 * header, and inference-aware):
 *   multi-turn   100 sessions x 10 turns, 4 long system prompts shared across sessions
 *   skew         60% of sessions share one system prompt, the rest have their own
 *   no-key       multi-turn without the session header (consistent hash falls back to P2C)
 *   slow-pod     multi-turn with one pod three times slower
 *   unique       single-turn prompts sharing nothing (prefix affinity can only hurt here)
 *
 * Arrivals are Poisson at a fixed rate; each arrival takes the next turn of a random session
 * among a window of open ones, so conversations interleave as they do in production. A turn's
 * history holds the previous turns' user and (synthetic) assistant messages, so each turn's
 * prompt extends the last one. Latency is measured from the intended send time.
 */
import { BenchClient, type RequestSpec } from '../lib/load.ts'
import { LatencyRecorder } from '../lib/recorder.ts'
import { check, type Check, type Measurement, type ResultRow, type Scenario } from '../lib/scenario.ts'
import { startGateway, type Target } from '../lib/targets.ts'
import type { BenchContext } from '../lib/scenario.ts'
import { seededRandom, type Random } from '../../src/routing/rng.ts'
import type { GatewayConfigInput } from '../../src/config/schema.ts'
import { resolve } from 'node:path'

const PODS = 8
const MODEL = 'llm'
const OUTPUT_TOKENS = 24
const FLEET_ENTRY = resolve(import.meta.dirname, '../reference/vllm-fleet.ts')
/**
 * One pod, in simulated ms: 16 sequences per batch, 8192 KV blocks of 16 tokens (131k tokens),
 * prefill at 5k tokens/s, 20 ms per step plus 1 ms per decoding sequence (a large model on one
 * GPU), run at half speed (timeScale 0.5). A conversation's own history is most of its prompt, so
 * where its turns land decides how much of it is prefilled again; TTFTs are tens to hundreds of
 * ms, above timer and scheduling noise on a busy machine.
 */
const POD = { maxBatch: 16, kvBlocks: 8192, blockTokens: 16, maxBatchedTokens: 2048, prefillMsPerToken: 0.2, stepMs: 20, decodeMsPerSeq: 1, timeScale: 0.5 }
/** Three times slower on every count. */
const SLOW_POD = { prefillMsPerToken: 0.6, stepMs: 60, decodeMsPerSeq: 3 }

/** [label, routing.balancer, routing.inferenceAware overrides, gateway entry (null: the run's own)]. */
type BalancerSpec = readonly [string, string, Record<string, unknown> | null, (string | null)?]

const BALANCERS: readonly BalancerSpec[] = [
  ['round-robin', 'weighted-round-robin', null],
  ['p2c-peak-ewma', 'p2c-peak-ewma', null],
  ['consistent-hash', 'consistent-hash', null],
  ['inference-aware', 'inference-aware', null],
]

/**
 * The balancers of this run: VELOX_BENCH_ROUTING_BALANCERS picks labels (the checks need the ones
 * they compare), VELOX_BENCH_ROUTING_VARIANTS adds inference-aware variants side by side, as a
 * JSON object of label -> `routing.inferenceAware` overrides. The key `gateway` of a variant is
 * not an override but another gateway entry point (another checkout's gateway/src/main.ts), so a
 * change can be compared with the code before it in one run.
 */
export function balancersOf(env: NodeJS.ProcessEnv): BalancerSpec[] {
  const variants = JSON.parse(env.VELOX_BENCH_ROUTING_VARIANTS ?? '{}') as Record<string, Record<string, unknown>>
  const all: BalancerSpec[] = [...BALANCERS]
  for (const [label, { gateway, ...overrides }] of Object.entries(variants)) {
    if (gateway !== undefined && typeof gateway !== 'string') throw new Error(`VELOX_BENCH_ROUTING_VARIANTS: ${label}.gateway must be a path`)
    all.push([label, 'inference-aware', Object.keys(overrides).length > 0 ? overrides : null, gateway === undefined ? null : resolve(gateway)])
  }
  const only = env.VELOX_BENCH_ROUTING_BALANCERS?.split(',').map((x) => x.trim()) ?? null
  if (only === null) return all
  for (const name of only) if (!all.some(([label]) => label === name)) throw new Error(`VELOX_BENCH_ROUTING_BALANCERS: unknown balancer "${name}" (known: ${all.map(([l]) => l).join(', ')})`)
  return all.filter(([label]) => only.includes(label) || Object.hasOwn(variants, label))
}

export interface Workload {
  name: string
  sessions: number
  turns: number
  /** Open sessions at a time (the arrival picks among them). */
  window: number
  ratePerSecond: number
  /** System prompt of session s. */
  system: (s: number) => string
  sessionKey: boolean
  slowPod: boolean
}

const WORDS = 'the of and to in is for on that with as by at from this be are or it an we can will which all their has more one about other into also time only new some could these two may first any like now over such our most even after made many where much through back years way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' ')

function words(rng: Random, chars: number): string {
  let s = ''
  while (s.length < chars) s += WORDS[Math.floor(rng() * WORDS.length)] + ' '
  return s.slice(0, chars)
}

export function systemPrompts(count: number, chars: number, seed: number): string[] {
  return Array.from({ length: count }, (_, i) => `System ${i}: you are assistant number ${i}. ` + words(seededRandom(seed + i), chars))
}

interface Planned {
  at: number
  session: number
  turn: number
  spec: RequestSpec
}

/** Poisson arrivals; arrival k takes the next turn of a random open session. */
export function plan(w: Workload, seed: number): Planned[] {
  const rng = seededRandom(seed)
  const turnOf = new Int32Array(w.sessions)
  const open: number[] = []
  let nextSession = 0
  while (open.length < w.window && nextSession < w.sessions) open.push(nextSession++)
  const out: Planned[] = []
  let t = 0
  while (open.length > 0) {
    t += -Math.log(1 - rng()) * (1000 / w.ratePerSecond)
    const slot = Math.floor(rng() * open.length)
    const s = open[slot]!
    const turn = turnOf[s]!++
    const messages: { role: string; content: string }[] = [{ role: 'system', content: w.system(s) }]
    for (let k = 0; k <= turn; k++) {
      const r = seededRandom(s * 1000 + k + seed * 7)
      messages.push({ role: 'user', content: `Session ${s}, question ${k}: ` + words(r, 1200) })
      if (k < turn) messages.push({ role: 'assistant', content: words(r, 800) })
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (w.sessionKey) headers['x-session-id'] = `session-${s}`
    const body = Buffer.from(JSON.stringify({ model: MODEL, messages, stream: true, max_tokens: OUTPUT_TOKENS }))
    out.push({ at: t, session: s, turn, spec: { method: 'POST', path: '/v1/chat/completions', body, headers } })
    if (turnOf[s]! >= w.turns) {
      if (nextSession < w.sessions) open[slot] = nextSession++
      else open.splice(slot, 1)
    }
  }
  return out
}

interface RunResult {
  balancer: string
  ttft: LatencyRecorder
  errors: number
  firstError: string | null
  completed: number
  elapsedMs: number
  perPod: number[]
  hitRate: number
  /** Later turns sent to another pod than their session's previous turn, and their TTFTs. */
  moved: LatencyRecorder
  laterTurns: number
  /** The slowest requests, with why they went where they went when explained. */
  slowest: Served[]
}

interface Served {
  session: number
  turn: number
  pod: number
  ttftMs: number
  moved: boolean
  route: string | null
}

async function startFleet(ctx: BenchContext, slowPod: boolean): Promise<{ urls: string[]; stop: () => Promise<void> }> {
  const args = [FLEET_ENTRY, '--pods', String(PODS), '--model', MODEL, '--tokens', String(OUTPUT_TOKENS), '--vllm', JSON.stringify(POD)]
  if (slowPod) args.push('--slow', JSON.stringify({ [String(PODS - 1)]: SLOW_POD }))
  const fleet = ctx.processes.start({ name: 'vllm-fleet', command: process.execPath, args, cpus: ctx.cores.loadGenerator })
  const urls = await fleet.waitForLine((line) => {
    if (!line.startsWith('{')) return undefined
    const event = JSON.parse(line) as { event?: string; urls?: string[] }
    return event.event === 'listening' ? event.urls : undefined
  }, 20_000)
  return { urls: urls!, stop: () => ctx.processes.stop(fleet) }
}

function gatewayConfig(urls: string[], balancer: string, inferenceAware: Record<string, unknown> | null, explain: boolean): GatewayConfigInput {
  const ia = balancer === 'inference-aware' && (inferenceAware !== null || explain) ? { inferenceAware: { ...inferenceAware, ...(explain ? { explain: true } : {}) } } : {}
  return {
    log: { level: 'warn' },
    cache: { enabled: false },
    upstreams: urls.map((url, i) => ({ name: `pod${i}`, url, models: [MODEL], pool: { connections: 128, warm: 4 }, timeouts: { firstByteMs: 60_000 } })),
    routing: {
      balancer: balancer as 'p2c-peak-ewma',
      hashKey: { header: 'x-session-id' },
      retry: { maxAttempts: 1 },
      health: { intervalMs: 0 },
      ...ia,
    },
  } as GatewayConfigInput
}

async function podCounters(urls: string[]): Promise<{ hits: number; queries: number }> {
  let hits = 0
  let queries = 0
  for (const url of urls) {
    const text = await (await fetch(url + '/metrics')).text()
    for (const line of text.split('\n')) {
      if (line.startsWith('vllm:prefix_cache_hits_total{')) hits += Number(line.split(' ').at(-1))
      if (line.startsWith('vllm:prefix_cache_queries_total{')) queries += Number(line.split(' ').at(-1))
    }
  }
  return { hits, queries }
}

/** Replays the plan through one gateway, open loop; resolves when every request has ended. */
function replay(gateway: Target, planned: Planned[], deadlineMs: number, explain: boolean): Promise<Omit<RunResult, 'balancer' | 'hitRate'>> {
  // Explained: x-velox-route names the member (member=podN; ...) and says why it won.
  const client = new BenchClient(gateway.url, { connections: 1024, keepHeader: explain ? 'x-velox-route' : 'x-velox-upstream' })
  const ttft = new LatencyRecorder()
  const moved = new LatencyRecorder()
  const perPod = new Array<number>(PODS).fill(0)
  const served: Served[] = []
  const lastPod = new Map<number, number>()
  let laterTurns = 0
  let errors = 0
  let firstError: string | null = null
  let completed = 0
  let lastDone = 0
  const start = performance.now() + 20
  return new Promise((resolveRun) => {
    let pending = planned.length
    const finish = (): void => {
      void client.close()
      const slowest = served.sort((a, b) => b.ttftMs - a.ttftMs).slice(0, 8)
      resolveRun({ ttft, errors, firstError, completed, elapsedMs: lastDone - start, perPod, moved, laterTurns, slowest })
    }
    const guard = setTimeout(() => {
      errors += pending
      firstError ??= `${pending} requests still running at the ${deadlineMs} ms deadline`
      pending = 0
      finish()
    }, deadlineMs + planned.at(-1)!.at)
    for (const p of planned) {
      const intended = start + p.at
      setTimeout(() => {
        const late = performance.now() - intended
        const spec = explain ? { ...p.spec, headers: { ...p.spec.headers, 'x-velox-debug': 'route' } } : p.spec
        void client.exchange(spec, false).then((x) => {
          if (pending === 0) return
          if (x.status === 200) {
            const ms = late + x.firstByteMs
            ttft.record(ms)
            completed++
            const kept = x.keptHeader ?? ''
            const pod = Number((explain ? (/^member=(\S+?);/.exec(kept)?.[1] ?? '') : kept).replace('pod', ''))
            if (Number.isInteger(pod) && pod >= 0 && pod < PODS) perPod[pod]!++
            // Moved: served by another pod than the session's last answered turn.
            const previous = lastPod.get(p.session)
            const wasMoved = p.turn > 0 && previous !== undefined && previous !== pod
            if (p.turn > 0) laterTurns++
            if (wasMoved) moved.record(ms)
            lastPod.set(p.session, pod)
            served.push({ session: p.session, turn: p.turn, pod, ttftMs: ms, moved: wasMoved, route: explain ? kept : null })
          } else {
            errors++
            firstError ??= `HTTP ${x.status}: ${x.error ?? ''}`
          }
          lastDone = performance.now()
          if (--pending === 0) {
            clearTimeout(guard)
            finish()
          }
        })
      }, Math.max(0, intended - performance.now()))
    }
  })
}

/**
 * The free port the harness picked can be taken by another process before the gateway binds it
 * on a shared machine (EADDRINUSE): a long run should not die of that, so start again on another.
 */
async function startGatewayRetrying(ctx: BenchContext, config: GatewayConfigInput, name: string): Promise<Target> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGateway(ctx, config, { name })
    } catch (err) {
      if (attempt >= 3) throw err
      ctx.log(`${name} did not start (${(err as Error).message}); trying again`)
    }
  }
}

async function runWorkload(ctx: BenchContext, w: Workload, seed: number, round: number, balancers: readonly BalancerSpec[], explain: boolean): Promise<RunResult[]> {
  const planned = plan(w, seed)
  const results: RunResult[] = []
  // Rotate the balancer order per workload and per round so machine drift does not favour one.
  const order = balancers.map((_, i) => balancers[(i + seed + round) % balancers.length]!)
  for (const [label, kind, overrides, entry] of order) {
    const fleet = await startFleet(ctx, w.slowPod)
    try {
      const explained = explain && kind === 'inference-aware'
      const gatewayCtx = entry ? { ...ctx, options: { ...ctx.options, gatewayEntry: entry } } : ctx
      const gateway = await startGatewayRetrying(gatewayCtx, gatewayConfig(fleet.urls, kind, overrides, explained), `gateway-${label}`)
      try {
        const run = await replay(gateway, planned, 60_000, explained)
        const { hits, queries } = await podCounters(fleet.urls)
        results.push({ balancer: label, ...run, hitRate: queries > 0 ? hits / queries : NaN })
        const t = run.ttft.summary()
        const m = run.moved.summary()
        const movedText = run.laterTurns > 0 ? `, moved ${run.moved.count}/${run.laterTurns} later turns${m.count > 0 ? ` (TTFT p50 ${m.p50.toFixed(0)} max ${m.max.toFixed(0)})` : ''}` : ''
        ctx.log(`${w.name} round ${round + 1}: ${label}, ${planned.length} requests: TTFT p50 ${t.p50.toFixed(0)} p99 ${t.p99.toFixed(0)} ms, hit rate ${(hits / queries).toFixed(2)}, per pod ${run.perPod.join('/')}${movedText}`)
        if (explain) for (const x of run.slowest) ctx.log(`  slow: ${x.ttftMs.toFixed(0)} ms session ${x.session} turn ${x.turn} pod${x.pod}${x.moved ? ' (moved)' : ''}${x.route !== null ? ': ' + x.route : ''}`)
      } finally {
        await ctx.processes.stop(gateway.process!)
      }
    } finally {
      await fleet.stop()
    }
  }
  return results.sort((a, b) => balancers.findIndex((x) => x[0] === a.balancer) - balancers.findIndex((x) => x[0] === b.balancer))
}

function spread(perPod: number[]): number {
  const mean = perPod.reduce((a, b) => a + b, 0) / perPod.length
  return mean > 0 ? Math.max(...perPod) / mean : NaN
}

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

/** One balancer's rounds of one workload: the median round's numbers, and every round's for the record. */
interface Rounds {
  balancer: string
  runs: RunResult[]
  p50: number
  p99: number
  spread: number
  hitRate: number
  moved: number
}

function roundsOf(balancer: string, runs: RunResult[]): Rounds {
  return {
    balancer,
    runs,
    p50: median(runs.map((r) => r.ttft.summary().p50)),
    p99: median(runs.map((r) => r.ttft.summary().p99)),
    spread: median(runs.map((r) => spread(r.perPod))),
    hitRate: median(runs.map((r) => r.hitRate)),
    moved: median(runs.map((r) => (r.laterTurns > 0 ? r.moved.count / r.laterTurns : NaN))),
  }
}

/**
 * A row per balancer: the TTFT distribution of the median round (by p50) when there are several,
 * plus medians over rounds and each round's p50/p99 in `extra`.
 */
function rowOf(workload: string, r: Rounds): ResultRow {
  const sorted = [...r.runs].sort((a, b) => a.ttft.summary().p50 - b.ttft.summary().p50)
  const mid = sorted[(sorted.length - 1) >> 1]!
  const fmt = (v: number): string => v.toFixed(0)
  return {
    target: `${workload}/${r.balancer}`,
    metric: 'ttft',
    latency: mid.ttft.summary(),
    requestsPerSecond: mid.elapsedMs > 0 ? (mid.completed * 1000) / mid.elapsedMs : null,
    errors: r.runs.reduce((n, x) => n + x.errors, 0),
    addedOver: null,
    added: null,
    cost: null,
    extra: {
      rounds: r.runs.length,
      medianP50: Number(r.p50.toFixed(1)),
      medianP99: Number(r.p99.toFixed(1)),
      p50s: r.runs.map((x) => fmt(x.ttft.summary().p50)).join('/'),
      p99s: r.runs.map((x) => fmt(x.ttft.summary().p99)).join('/'),
      prefixHitRate: Number(r.hitRate.toFixed(3)),
      maxPodOverMean: Number(r.spread.toFixed(2)),
      movedTurns: Number(r.moved.toFixed(3)),
      perPod: mid.perPod.join('/'),
    },
  }
}

export const inferenceRouting: Scenario = {
  name: 'inference-routing',
  title: 'Inference-aware routing vs round robin, P2C and consistent hash on 8 simulated vLLM pods',
  description: 'Multi-turn conversations with shared system prompts (plus skew, no session key, one slow pod, no shared prefix), open loop near 70% of P2C capacity; TTFT, throughput, prefix-cache hit rate, load spread.',
  async run(ctx): Promise<Measurement> {
    const q = ctx.options.quick
    const shared = systemPrompts(4, 2000, 11)
    const hot = systemPrompts(1, 8000, 99)[0]!
    const own = (s: number): string => `Private assistant for customer ${s}. ` + words(seededRandom(5000 + s), 4000)
    const rate = Number(process.env.VELOX_BENCH_ROUTING_RATE ?? 18)
    const only = process.env.VELOX_BENCH_ROUTING_WORKLOADS?.split(',') ?? null
    // Rounds per workload: each replays the same plan through every balancer (order rotated); the
    // checks compare medians over rounds.
    const roundsCount = Math.max(1, Number(process.env.VELOX_BENCH_ROUTING_ROUNDS ?? 1))
    const balancers = balancersOf(process.env)
    // Log the slowest requests of each inference-aware run with the balancer's explanation.
    const explain = process.env.VELOX_BENCH_ROUTING_EXPLAIN === '1' 
    const workloads: Workload[] = [
      { name: 'multi-turn', sessions: q ? 40 : 100, turns: q ? 6 : 10, window: 32, ratePerSecond: rate, system: (s) => shared[s % 4]!, sessionKey: true, slowPod: false },
      { name: 'skew', sessions: q ? 24 : 48, turns: q ? 4 : 8, window: 32, ratePerSecond: rate, system: (s) => (s % 5 < 3 ? hot : own(s)), sessionKey: true, slowPod: false },
      { name: 'no-key', sessions: q ? 24 : 48, turns: q ? 4 : 8, window: 32, ratePerSecond: rate, system: (s) => shared[s % 4]!, sessionKey: false, slowPod: false },
      { name: 'slow-pod', sessions: q ? 24 : 48, turns: q ? 4 : 8, window: 32, ratePerSecond: rate, system: (s) => shared[s % 4]!, sessionKey: true, slowPod: true },
      { name: 'unique', sessions: q ? 100 : 240, turns: 1, window: 32, ratePerSecond: rate, system: (s) => own(s), sessionKey: true, slowPod: false },
    ]
    const rows: ResultRow[] = []
    const checks: Check[] = []
    const notes: string[] = []
    for (const [i, w] of workloads.entries()) {
      if (only !== null && !only.includes(w.name)) continue
      const perRound: RunResult[][] = []
      for (let round = 0; round < roundsCount; round++) perRound.push(await runWorkload(ctx, w, i + 1, round, balancers, explain))
      const results = balancers.map(([label]) => roundsOf(label, perRound.map((runs) => runs.find((r) => r.balancer === label)!)))
      for (const r of results) {
        rows.push(rowOf(w.name, r))
        for (const run of r.runs) if (run.errors > 0) notes.push(`${w.name}/${r.balancer}: ${run.errors} failed, first: ${run.firstError}`)
      }
      const by = (name: string): Rounds | undefined => results.find((r) => r.balancer === name)
      const p2c = by('p2c-peak-ewma')
      const ch = by('consistent-hash')
      const of = roundsCount > 1 ? ` (medians of ${roundsCount} rounds)` : ''
      // Every inference-aware variant of the run against the balancers it was run beside.
      for (const [label] of balancers.filter(([, kind]) => kind === 'inference-aware')) {
        const ia = by(label)!
        if (p2c !== undefined) {
          checks.push(check(`${w.name}: ${label} TTFT p50 / P2C p50${of}`, ia.p50 / p2c.p50, '<=', w.name === 'unique' ? 1.1 : 0.5, 'ratio'))
          checks.push(check(`${w.name}: ${label} TTFT p99 / P2C p99${of}`, ia.p99 / p2c.p99, '<=', w.name === 'unique' ? 1.1 : 1, 'ratio'))
        }
        if (w.name === 'unique') continue
        if (ch !== undefined) {
          checks.push(check(`${w.name}: ${label} TTFT p50 / consistent-hash p50${of}`, ia.p50 / ch.p50, '<=', 1, 'ratio'))
          checks.push(check(`${w.name}: ${label} TTFT p99 / consistent-hash p99${of}`, ia.p99 / ch.p99, '<=', 1, 'ratio'))
        }
        checks.push(check(`${w.name}: ${label} busiest pod / mean${of}`, ia.spread, '<=', 2, 'ratio'))
      }
      checks.push(check(`${w.name}: failed requests (all balancers)`, results.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.errors, 0), 0), '<=', 0, 'requests'))
    }
    notes.push('rows: <workload>/<balancer>; latency is TTFT (first body byte, from the intended send time) in ms, of the median round; extra: medians over rounds of p50, p99, prefix-cache hit rate over all pods and busiest pod / mean requests, each round\'s p50s and p99s, requests per pod, share of later turns moved off their session\'s previous pod')
    notes.push('unique: the 1.1x limit allows for run-to-run noise on this shared machine; the others are the exact goals')
    return {
      parameters: { pods: PODS, pod: POD, slowPod: SLOW_POD, outputTokens: OUTPUT_TOKENS, ratePerSecond: rate, rounds: roundsCount, workloads: workloads.map((w) => ({ name: w.name, sessions: w.sessions, turns: w.turns })) },
      rows,
      checks,
      notes,
    }
  },
}
