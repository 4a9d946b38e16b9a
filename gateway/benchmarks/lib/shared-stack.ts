/**
 * The standard stack (simulator beside the gateway; gateway, naive proxy and nginx in front of it),
 * started once per run and shared by the latency scenarios.
 *
 * A fresh gateway on this machine keeps improving its p99 for its first ~100,000 requests (JIT
 * tiers, heap sizing): measured after 40,000 warm-up requests its p99 was still two to four times
 * its steady value. Warming every scenario's own processes that long would blow the run's time
 * budget, so the stack is warmed once, thoroughly, and each scenario tops it up before measuring.
 * The warm-up runs when the first scenario asks for the stack, so `--only` gives the same state.
 */
import { warmUp, assertWarm } from './load.ts'
import type { BenchContext } from './scenario.ts'
import { chatRequest, chatBody, startStandardTargets, type Simulator, type Target } from './targets.ts'

/** The simulator the standard stack runs: long enough streams for (d), short answers for the rest. */
export const STANDARD_SIMULATOR = { tokens: 50, interTokenMs: 1 } as const
/** Non-streaming requests ask for this many tokens (the simulator honours max_tokens). */
export const STANDARD_ANSWER_TOKENS = 16

const WARM_UP_CONNECTIONS = 16
const WARM_UP_SLICES = 8

export interface StandardStack {
  simulator: Simulator
  /** direct, gateway, baseline-gateway (with `--baseline-gateway`), naive-proxy and nginx (when installed), in that order. */
  targets: Target[]
}

export class SharedStacks {
  readonly #ctx: BenchContext
  #standard: Promise<StandardStack> | null = null

  /** `scope` is the run's: processes started here live until the run ends. */
  constructor(scope: Omit<BenchContext, 'shared'>) {
    this.#ctx = { ...scope, shared: this }
  }

  standard(): Promise<StandardStack> {
    this.#standard ??= this.#startStandard()
    return this.#standard
  }

  async #startStandard(): Promise<StandardStack> {
    const ctx = this.#ctx
    const { targets, simulator } = await startStandardTargets(ctx, STANDARD_SIMULATOR)
    const plain = chatRequest(chatBody({ stream: false, maxTokens: STANDARD_ANSWER_TOKENS }))
    const stream = chatRequest(chatBody({ stream: true, maxTokens: STANDARD_SIMULATOR.tokens }))
    const requests = ctx.options.quick ? 30_000 : 100_000
    const streams = ctx.options.quick ? 100 : 400
    ctx.log(`warming the standard stack: ${requests} requests and ${streams} streams per target`)
    // Interleaved slices, so no target idles for long between its warm-up and its first measurement.
    for (let slice = 0; slice < WARM_UP_SLICES; slice++) {
      for (const target of targets) {
        assertWarm(target.name, await warmUp(target.url, plain, { requests: requests / WARM_UP_SLICES, connections: WARM_UP_CONNECTIONS, stream: false }))
      }
    }
    for (const target of targets) assertWarm(target.name, await warmUp(target.url, stream, { requests: streams, connections: WARM_UP_CONNECTIONS, stream: true }))
    return { simulator, targets }
  }
}
