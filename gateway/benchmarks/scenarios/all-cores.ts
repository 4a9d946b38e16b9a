import { processTree } from '../lib/proc-stats.ts'
import { check, ScenarioSkipped, type Measurement, type Scenario } from '../lib/scenario.ts'
import { singleUpstreamConfig, startGateway, startSimulator } from '../lib/targets.ts'
import { measureThroughput } from './max-throughput.ts'

const CONNECTIONS = 64

/**
 * One gateway process on its own core vs `server.workers: 0` (one worker per core) spread over
 * every core. On this 2-core machine the workers share cores with wrk and the simulator, so this
 * shows what the extra process buys once the load generator competes for the same cores.
 */
export const allCores: Scenario = {
  name: 'all-cores',
  title: 'Throughput, all cores vs one',
  description: `wrk -t1 -c${CONNECTIONS} through a one-process gateway pinned to one core and a server.workers: 0 gateway on every core.`,
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { warmupSeconds: 1, rounds: 2, roundSeconds: 1 } : { warmupSeconds: 2, rounds: 4, roundSeconds: 2 }
    const simulator = await startSimulator(ctx, { tokens: 16, placement: 'beside-load-generator' })
    const base = singleUpstreamConfig(simulator.url)
    const spread = await startGateway(ctx, { ...base, server: { workers: 0 } }, { name: 'gateway-all-cores', cpus: ctx.cores.all })
    const workers = processTree(spread.process!.pid).length
    if (workers < 2) {
      throw new ScenarioSkipped('server.workers: 0 still runs a single process: the gateway has no multi-worker mode yet')
    }
    const single = await startGateway(ctx, base, { name: 'gateway-one-core' })
    const rows = await measureThroughput(ctx, [single, spread], plan, CONNECTIONS, null)
    const [oneCore, allCoresRow] = rows
    return {
      parameters: { ...plan, connections: CONNECTIONS, processesWithWorkers: workers },
      rows,
      checks: [
        check('all cores over one core, throughput', allCoresRow!.requestsPerSecond! / oneCore!.requestsPerSecond!, '>=', 1, 'ratio'),
        check('wrk errors', rows.reduce((n, r) => n + r.errors, 0), '<=', 0, 'requests'),
      ],
      notes: ['cpu us/req and rss of the all-cores row sum every worker process'],
    }
  },
}
