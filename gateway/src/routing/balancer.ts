/** Builds the balancer a routing config names. One instance per member group (it may keep per-group state). */
import { ConsistentHashBalancer } from './balancer-consistent-hash.ts'
import { InferenceAwareBalancer } from './balancer-inference-aware.ts'
import { LeastOutstandingBalancer } from './balancer-least-outstanding.ts'
import { P2cPeakEwmaBalancer } from './balancer-p2c.ts'
import { WeightedRoundRobinBalancer } from './balancer-wrr.ts'
import { type BalancerKind, type InferenceAwareConfig, InferenceAwareSchema } from './config.ts'
import type { Random } from './rng.ts'
import type { Balancer } from './tier-scan.ts'

export type { Balancer } from './tier-scan.ts'

export interface BalancerOptions {
  /** Uniform [0, 1) source; Math.random by default, seeded in tests. */
  readonly random?: Random
  /** Ring points per member of average weight (consistent-hash only). */
  readonly virtualNodes?: number
  /** Weights, prefix index and metrics settings (inference-aware only); the defaults when absent. */
  readonly inferenceAware?: InferenceAwareConfig
}

export function createBalancer(kind: BalancerKind, opts: BalancerOptions = {}): Balancer {
  const random = opts.random ?? Math.random
  switch (kind) {
    case 'p2c-peak-ewma':
      return new P2cPeakEwmaBalancer(random)
    case 'weighted-round-robin':
      return new WeightedRoundRobinBalancer()
    case 'least-outstanding':
      return new LeastOutstandingBalancer()
    case 'consistent-hash':
      return new ConsistentHashBalancer(random, opts.virtualNodes)
    case 'inference-aware':
      return new InferenceAwareBalancer(opts.inferenceAware ?? InferenceAwareSchema.parse({}))
    default: {
      const unknownKind: never = kind
      throw new Error(`unknown balancer "${String(unknownKind)}"`)
    }
  }
}
