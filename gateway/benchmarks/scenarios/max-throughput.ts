import { NGINX_MISSING_NOTE } from '../lib/nginx.ts'
import { check, computeAdded, findRow, optionalRow, interleaved, type BenchContext, type Measurement, type ResultRow, type Scenario } from '../lib/scenario.ts'
import { chatBody, CostMeter, startStandardTargets, type Target } from '../lib/targets.ts'
import { runWrk, type WrkResult } from '../lib/wrk.ts'

const CONNECTIONS = 64

/**
 * Saturation with wrk (1 thread, 64 connections) on the load generator's core. The gateway has a
 * core to itself, so its row is one gateway process's ceiling; its core utilisation tells whether
 * it was the bottleneck (near 1.0) or the simulator and wrk sharing the other core were.
 */
export const maxThroughput: Scenario = {
  name: 'max-throughput',
  title: '(c) Maximum throughput',
  description: `wrk -t1 -c${CONNECTIONS}, non-streaming chat completion; requests per second through each hop.`,
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { warmupSeconds: 1, rounds: 2, roundSeconds: 1 } : { warmupSeconds: 2, rounds: 6, roundSeconds: 2 }
    const { targets } = await startStandardTargets(ctx, { tokens: 16, placement: 'beside-load-generator' })
    const rows = computeAdded(await measureThroughput(ctx, targets, plan, CONNECTIONS, 'direct'))
    const gateway = findRow(rows, 'gateway', 'latency')
    const naive = findRow(rows, 'naive-proxy', 'latency')
    const nginx = optionalRow(rows, 'nginx', 'latency')
    return {
      parameters: { ...plan, connections: CONNECTIONS, threads: 1 },
      rows,
      checks: [
        check('gateway throughput, one process', gateway.requestsPerSecond!, '>=', 15_000, 'req/s'),
        check('gateway throughput over naive proxy', gateway.requestsPerSecond! / naive.requestsPerSecond!, '>=', 1, 'ratio'),
        ...(nginx === null ? [] : [check('gateway throughput over nginx, one process each', gateway.requestsPerSecond! / nginx.requestsPerSecond!, '>=', 0.75, 'ratio')]),
        check('wrk errors', rows.reduce((n, r) => n + r.errors, 0), '<=', 0, 'requests'),
      ],
      notes: [
        'wrk latencies are closed-loop at saturation (queueing, not service time) and come from the median-throughput round; throughput is over all rounds',
        ...(nginx === null ? [NGINX_MISSING_NOTE] : []),
      ],
    }
  },
}

export interface ThroughputPlan {
  warmupSeconds: number
  rounds: number
  roundSeconds: number
}

/** wrk against each target, interleaved over rounds; one row per target. */
export async function measureThroughput(ctx: BenchContext, targets: Target[], plan: ThroughputPlan, connections: number, addedOver: string | null): Promise<ResultRow[]> {
  const body = chatBody({ stream: false })
  const wrk = (target: Target, seconds: number): Promise<WrkResult> =>
    runWrk(ctx.processes, {
      url: `${target.url}/v1/chat/completions`,
      body,
      connections,
      threads: 1,
      durationSeconds: seconds,
      cpus: ctx.cores.loadGenerator,
      workDir: ctx.workDir,
    })
  const lanes = targets.map((target) => ({ target, meter: new CostMeter(target), rounds: [] as WrkResult[] }))
  for (const lane of lanes) await wrk(lane.target, plan.warmupSeconds)
  await interleaved(plan.rounds, lanes, async (lane) => {
    lane.rounds.push(await lane.meter.measure(() => wrk(lane.target, plan.roundSeconds)))
  })
  return Promise.all(lanes.map(async (lane) => {
    const requests = lane.rounds.reduce((n, r) => n + r.requests, 0)
    const durationMs = lane.rounds.reduce((n, r) => n + r.durationMs, 0)
    const byRate = [...lane.rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)
    const median = byRate[Math.floor(byRate.length / 2)]!
    const cost = await lane.meter.report()
    return {
      target: lane.target.name,
      metric: 'latency',
      latency: { count: requests, min: NaN, ...median.latencyMs },
      requestsPerSecond: (requests * 1000) / durationMs,
      errors: lane.rounds.reduce((n, r) => n + r.errors, 0),
      addedOver: lane.target.name === addedOver ? null : addedOver,
      added: null,
      cost,
      extra: {
        roundsReqPerSec: lane.rounds.map((r) => r.requestsPerSecond.toFixed(0)).join('/'),
        ...(cost ? { coreUtilization: cost.coreUtilization } : {}),
      },
    }
  }))
}
