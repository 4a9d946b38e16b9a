/**
 * Every scenario, in run order. To add one: write scenarios/<name>.ts exporting a Scenario and list
 * it here. A scenario the gateway cannot support yet goes in `pendingScenarios` with what it waits
 * for; it is listed in every report and never produces numbers.
 */
import type { PendingScenario, Scenario } from '../lib/scenario.ts'
import { allCores } from './all-cores.ts'
import { anthropicStream } from './anthropic-stream.ts'
import { bodySize } from './body-size.ts'
import { cacheHit } from './cache-hit.ts'
import { fixedRate } from './fixed-rate.ts'
import { inferenceRouting } from './inference-routing.ts'
import { limitsOverhead } from './limits-overhead.ts'
import { maxThroughput } from './max-throughput.ts'
import { oneAtATime } from './one-at-a-time.ts'
import { routingFanout } from './routing-fanout.ts'
import { slowUpstream } from './slow-upstream.ts'
import { streaming } from './streaming.ts'
import { streamsAtScale } from './streams-at-scale.ts'
import { telemetryOverhead } from './telemetry-overhead.ts'

export const scenarios: readonly Scenario[] = [oneAtATime, fixedRate, maxThroughput, streaming, anthropicStream, routingFanout, allCores, slowUpstream, cacheHit, bodySize, streamsAtScale, inferenceRouting, telemetryOverhead, limitsOverhead]

export const pendingScenarios: readonly PendingScenario[] = []
