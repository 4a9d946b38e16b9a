import { Redis } from 'ioredis'
import type { GatewayConfigInput } from '../../src/config/schema.ts'
import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { assertWarm, closedLoop, openLoop } from '../lib/load.ts'
import { check, computeAdded, findRow, interleaved, ROUND_REWARM_REQUESTS, warmUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, directTarget, freePort, singleUpstreamConfig, startGateway, startSimulator } from '../lib/targets.ts'

/**
 * What limits cost a request on the hot path: three gateways over one simulator, side by side in
 * one run: limits off, a rule set counted in memory, and the same rules counted in a real
 * redis-server (leases: far from a limit no request waits for Redis). One request at a time and
 * at a fixed arrival rate, interleaved; added latency over direct, CPU per request, and the Redis
 * commands the shared counts cost per request.
 */
const RULES: NonNullable<GatewayConfigInput['limits']>['rules'] = [
  // Far from every limit, as a tenant almost always is: what a check costs, not a refusal.
  { name: 'tenant', per: ['tenant'], requestsPerMinute: 100_000_000, tokensPerMinute: 10_000_000_000, concurrent: 100_000, tokensPerDay: 1_000_000_000_000 },
  { name: 'model', per: ['model'], requestsPerMinute: 100_000_000 },
]

export const limitsOverhead: Scenario = {
  name: 'limits-overhead',
  title: 'Limits off vs counted in memory vs counted in Redis',
  description: 'Closed loop (1 connection) and open loop at the fixed rate: gateways with limits off, limits in memory, limits in a real redis-server; added latency over direct, CPU per request, Redis commands per request.',
  async run(ctx): Promise<Measurement> {
    const rate = ctx.options.ratePerSecond
    const plan = ctx.options.quick ? { rounds: 10, perRound: 100, roundMs: 400 } : { rounds: 30, perRound: 100, roundMs: 500 }
    const port = await freePort()
    // Redis gets the load generator's core: on a real deployment it is another machine.
    const redisProcess = ctx.processes.start({
      name: 'redis-server',
      command: '/usr/bin/redis-server',
      args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      cpus: ctx.cores.loadGenerator,
    })
    await redisProcess.waitForLine((line) => (line.includes('Ready to accept connections') ? true : undefined), 10_000)
    const redisUrl = `redis://127.0.0.1:${port}`
    const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await probe.connect()

    const sim = await startSimulator(ctx, { tokens: 16 })
    const base = singleUpstreamConfig(sim.url)
    const limits = { rules: RULES }
    const [off, memory, redis] = await Promise.all([
      startGateway(ctx, base, { name: 'gateway' }),
      startGateway(ctx, { ...base, limits: { ...limits, backend: 'memory' } }, { name: 'gateway-limits-memory' }),
      startGateway(ctx, { ...base, redis: { url: redisUrl }, limits: { ...limits, backend: 'redis' } }, { name: 'gateway-limits-redis' }),
    ])
    const targets = [directTarget(sim), off, memory, redis]
    const spec = chatRequest(chatBody({ stream: false, maxTokens: 16 }))
    const serial = targets.map((target) => new Lane(target, { connections: 1 }))
    const fixed = targets.map((target) => new Lane(target, { connections: 64 }))
    let lateSends = 0
    let redisCommands = 0
    let redisMeasuredRequests = 0
    const commandsProcessed = async (): Promise<number> => Number(/total_commands_processed:(\d+)/.exec(await probe.info('stats'))![1])
    try {
      await warmUpLanes(serial.map((lane) => ({ lane, source: spec })), warmUpRequests(ctx))
      for (const lane of fixed) assertWarm(lane.name, await openLoop(lane.client, spec, { ratePerSecond: rate, durationMs: 300 }, null))
      await interleaved(plan.rounds, serial, async (lane) => {
        await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
        const before = lane === serial[3] ? await commandsProcessed() : 0
        const result = await lane.phase(() => closedLoop(lane.client, spec, plan.perRound, lane.recorder('one-at-a-time')))
        if (lane === serial[3]) {
          // The INFO call itself is one command; the rest is what the gateway sent.
          redisCommands += (await commandsProcessed()) - before - 1
          redisMeasuredRequests += result.requests
        }
      })
      await interleaved(plan.rounds, fixed, async (lane) => {
        await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
        const result = await lane.phase(() => openLoop(lane.client, spec, { ratePerSecond: rate, durationMs: plan.roundMs }, lane.recorder(`${rate}/s`)))
        lateSends += result.lateSends
      })
    } finally {
      await closeLanes([...serial, ...fixed])
      probe.disconnect()
    }
    // Decisions the Redis gateway made locally because a call failed or passed redis.commandTimeoutMs.
    const metricsText = await fetch(redis.metricsUrl!).then((r) => r.text(), () => '')
    let fallbacks = 0
    for (const m of metricsText.matchAll(/^velox_limit_store_fallbacks_total\{op="([^"]+)"\} (\d+)/gm)) fallbacks += Number(m[2])
    const rows = computeAdded([
      ...serial.map((lane) => lane.row('one-at-a-time', lane.name === 'direct' ? null : 'direct')),
      ...fixed.map((lane) => lane.row(`${rate}/s`, lane.name === 'direct' ? null : 'direct')),
    ])
    const added = (name: string, metric: string) => findRow(rows, name, metric).added!
    const cpu = (lanes: Lane[], name: string) => lanes.find((l) => l.name === name)!.cost?.cpuUsPerRequest ?? NaN
    const delta = (name: string, metric: string, p: 'p50' | 'p99') => added(name, metric)[p] - added('gateway', metric)[p]
    const notes = [
      `Redis commands per request (limits in Redis, one at a time): ${(redisCommands / Math.max(1, redisMeasuredRequests)).toFixed(3)} (${redisCommands} commands for ${redisMeasuredRequests} requests, background lease refills, returns and heartbeats included)`,
      ...(['one-at-a-time', `${rate}/s`] as const).flatMap((metric) =>
        ['gateway-limits-memory', 'gateway-limits-redis'].map(
          (name) => `${metric}: ${name} adds p50 ${delta(name, metric, 'p50').toFixed(3)} ms, p99 ${delta(name, metric, 'p99').toFixed(3)} ms over limits off`,
        ),
      ),
      ...['gateway', 'gateway-limits-memory', 'gateway-limits-redis'].map(
        (name) => `CPU per request, ${name}: ${cpu(serial, name).toFixed(1)} us one at a time, ${cpu(fixed, name).toFixed(1)} us at ${rate}/s`,
      ),
      `limits in Redis: ${fallbacks} decisions made locally because a Redis call failed or passed the command timeout (velox_limit_store_fallbacks_total)`,
      `${lateSends} sends at ${rate}/s left more than 0.05 ms after their intended time (generator lag; included in the latencies)`,
      ...errorNotes([...serial, ...fixed]),
    ]
    return {
      parameters: { ...plan, ratePerSecond: rate, rules: RULES.length },
      rows,
      checks: [
        check('limits in Redis: added p50 over limits off, one at a time', delta('gateway-limits-redis', 'one-at-a-time', 'p50'), '<=', 0.03, 'ms'),
        check(`limits in Redis: added p99 over limits off at ${rate}/s`, delta('gateway-limits-redis', `${rate}/s`, 'p99'), '<=', 0.1, 'ms'),
        check('Redis commands per request, far from every limit', redisCommands / Math.max(1, redisMeasuredRequests), '<=', 0.1, 'commands'),
        check('failed requests', totalErrors([...serial, ...fixed]), '<=', 0, 'requests'),
      ],
      notes,
    }
  },
}
