import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { closedLoop } from '../lib/load.ts'
import { check, computeAdded, findRow, interleaved, ROUND_REWARM_REQUESTS, warmUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, directTarget, singleUpstreamConfig, startGateway, startSimulator } from '../lib/targets.ts'

/**
 * What tracing and continuous profiling cost a request: three gateways over one simulator, one
 * plain, one exporting OTLP/HTTP spans at 1% sampling to a local collector, one pushing CPU
 * profiles every second to a local Pyroscope-style endpoint; one request at a time, interleaved.
 */
export const telemetryOverhead: Scenario = {
  name: 'telemetry-overhead',
  title: 'Tracing (1% sampled) and continuous profiling overhead',
  description: 'Closed loop, 1 connection: a plain gateway, one with OTLP tracing at 1% sampling, one with continuous CPU profiling; added latency over direct.',
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { rounds: 15, perRound: 100 } : { rounds: 40, perRound: 100 }
    let spans = 0
    let profiles = 0
    const sink = http.createServer((req, res) => {
      if (req.url?.startsWith('/v1/traces')) spans++
      else if (req.url?.startsWith('/ingest')) profiles++
      req.resume()
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
    })
    sink.listen(0, '127.0.0.1')
    await once(sink, 'listening')
    const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`
    const sim = await startSimulator(ctx, { tokens: 16 })
    const base = singleUpstreamConfig(sim.url)
    // One after another: the three share the gateway core, and loading the OpenTelemetry SDK and
    // the profiler there at once can outlast the harness's readiness deadline on a busy machine.
    const plain = await startGateway(ctx, base, { name: 'gateway' })
    const traced = await startGateway(ctx, { ...base, telemetry: { tracing: { endpoint: sinkUrl, protocol: 'http/json', sampleRatio: 0.01 } } }, { name: 'gateway-otel-1pct' })
    const profiled = await startGateway(ctx, { ...base, telemetry: { profiling: { pushUrl: sinkUrl, intervalMs: 1_000 } } }, { name: 'gateway-profiling' })
    const spec = chatRequest(chatBody({ stream: false, maxTokens: 16 }))
    const lanes = [directTarget(sim), plain, traced, profiled].map((target) => new Lane(target, { connections: 1 }))
    try {
      await warmUpLanes(lanes.map((lane) => ({ lane, source: spec })), warmUpRequests(ctx))
      await interleaved(plan.rounds, lanes, async (lane) => {
        await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
        await lane.phase(() => closedLoop(lane.client, spec, plan.perRound, lane.recorder('latency')))
      })
    } finally {
      await closeLanes(lanes)
      sink.close()
    }
    const rows = computeAdded(lanes.map((lane) => lane.row('latency', lane.name === 'direct' ? null : 'direct')))
    const p50 = (name: string): number => findRow(rows, name, 'latency').added!.p50
    return {
      parameters: { ...plan, connections: 1, sampleRatio: 0.01, profileIntervalMs: 1_000 },
      rows,
      checks: [
        check('tracing at 1%: added p50 over the plain gateway', p50('gateway-otel-1pct') - p50('gateway'), '<=', 0.02, 'ms'),
        check('failed requests', totalErrors(lanes), '<=', 0, 'requests'),
      ],
      notes: [`collector received ${spans} span exports and ${profiles} profiles`, ...errorNotes(lanes)],
    }
  },
}
