/**
 * What the balancers may know about one request besides its model: the affinity key, the hashed
 * prompt prefix (inference-aware only), whether the caller asked why a member was chosen, and the
 * caller's priority class and tenant for admission control. Built once per request; every attempt of it reads the same one.
 */
import type { RoutingConfig } from './config.ts'
import { prefixBlocks } from './prefix-hash.ts'
import { NORMAL_CLASS } from '../upstream/fair-queue.ts'

export class RouteRequest {
  /** Consistent-hash key (session header or body field), or null. */
  readonly affinityKey: string | null
  /** Chained hashes of the prompt's leading blocks (see prefix-hash.ts), or null when not computed. */
  readonly blocks: Uint32Array | null
  /** Fill `explanation` on every pick. */
  readonly explain: boolean
  /**
   * The key's priority class (PRIORITY_CLASS: 0 is critical, `normal` by default): saturated
   * groups shed less important classes first and release held requests most important first.
   */
  readonly priority: number
  /** The caller's tenant: held requests of one class are released tenants in turn. */
  readonly tenant: string
  /** Why the last pick chose its member, when `explain` is set. */
  explanation: string | null
  /**
   * Prompt blocks the last pick expects its member to prefill (the uncached ones, plus one); the
   * attempt charges them to the member until its first token. 0 when not estimated.
   */
  charge: number

  constructor(affinityKey: string | null, blocks: Uint32Array | null = null, explain = false, priority = NORMAL_CLASS, tenant = 'default') {
    this.affinityKey = affinityKey
    this.blocks = blocks
    this.explain = explain
    this.priority = priority
    this.tenant = tenant
    this.explanation = null
    this.charge = 0
  }
}

/** The request header that asks for `x-velox-route` (value `route`), when `inferenceAware.explain` is on. */
export const DEBUG_HEADER = 'x-velox-debug'
/** The response header that says why the member won. */
export const ROUTE_HEADER = 'x-velox-route'

/**
 * What one request tells the inference-aware balancer (null for the other balancers): the
 * prompt's prefix blocks when the prefix or prefill scorer is on (hashing costs microseconds per KB of prompt), and `explain` only when
 * the config allows it and the client asked.
 */
export function routeRequestFor(
  routing: RoutingConfig,
  affinityKey: string | null,
  /** The request body; `json` is read only when the prompt is hashed (it may parse the body). */
  body: { readonly json: Record<string, unknown> },
  model: string,
  debugHeader: string | string[] | undefined,
  tenant = 'default',
  priority = NORMAL_CLASS,
): RouteRequest | null {
  // The other balancers read only the key, which the call passes on its own: nothing to build.
  if (routing.balancer !== 'inference-aware') return null
  const ia = routing.inferenceAware
  const blocks = ia.weights.prefix > 0 || ia.weights.prefill > 0 ? prefixBlocks(body.json, model, ia.prefix.blockChars, ia.prefix.maxBlocks) : null
  const explain = ia.explain && typeof debugHeader === 'string' && debugHeader.includes('route')
  return new RouteRequest(affinityKey, blocks, explain, priority, tenant)
}
