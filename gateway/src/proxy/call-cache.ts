/**
 * The cache's part in one proxied call: a semantic lookup racing the upstream (it wins only if it
 * answers before the upstream's first byte), and the recorder that stores the upstream's answer
 * once the client received it whole.
 */
import type { ClientResponse } from '../protocols/client-response.ts'
import { CACHE_REASON_HEADER, CACHE_STATUS_HEADER, type CachePlan, type Recorder, type ResponseCache, type SemanticResult } from '../cache/index.ts'
import type { UpstreamHeaders } from './context.ts'

export class CallCache {
  readonly cache: ResponseCache
  readonly plan: CachePlan
  /** Aborts the semantic lookup once the upstream answers first. */
  #semantic: AbortController | null
  #recorder: Recorder | null

  constructor(cache: ResponseCache, plan: CachePlan) {
    this.cache = cache
    this.plan = plan
    this.#semantic = null
    this.#recorder = null
  }

  /** Starts the semantic lookup, or returns null when the plan has none. */
  lookupSemantic(): Promise<SemanticResult | null> | null {
    const abort = new AbortController()
    const lookup = this.cache.semanticLookup(this.plan, abort.signal)
    if (lookup !== null) this.#semantic = abort
    return lookup
  }

  /** A semantic hit won the race: the client gets it instead of the upstream's answer. */
  replay(hit: SemanticResult, res: ClientResponse, extraHeaders: Record<string, string>): void {
    this.cache.replay(hit.response, this.plan, res, extraHeaders)
  }

  /** What the cache did for a call the upstream answered: looked and missed, or stayed out. */
  get outcome(): 'miss' | 'bypass' {
    return this.plan.mode === 'lookup' ? 'miss' : 'bypass'
  }

  /**
   * The upstream's answer is about to reach the client: the lookup loses, the cache headers join
   * the response's, and recording starts.
   */
  committed(status: number, headers: UpstreamHeaders, out: string[]): void {
    const plan = this.plan
    if (plan.mode === 'lookup') out.push(CACHE_STATUS_HEADER, 'miss')
    else out.push(CACHE_STATUS_HEADER, 'bypass', CACHE_REASON_HEADER, plan.reason)
    this.#stopLookup()
    this.#recorder = this.cache.recorder(plan, status, headers)
  }

  /**
   * The answer comes from an upstream of another protocol, translated on its way: its bytes are
   * not the internal shape the cache stores, so nothing is recorded.
   */
  committedUncached(out: string[]): void {
    out.push(CACHE_STATUS_HEADER, 'bypass', CACHE_REASON_HEADER, 'upstream-protocol')
    this.#stopLookup()
  }

  onData(chunk: Buffer): void {
    this.#recorder?.onData(chunk)
  }

  /** The upstream's answer ended; only one the client received whole is worth storing. */
  ended(clientGotAll: boolean): void {
    const recorder = this.#recorder
    if (recorder === null) return
    this.#recorder = null
    if (clientGotAll) recorder.onEnd()
    else recorder.onAbort()
  }

  /** The call is over: a lookup still running stops, a recording still open did not complete. */
  close(): void {
    this.#stopLookup()
    this.#recorder?.onAbort()
    this.#recorder = null
  }

  #stopLookup(): void {
    this.#semantic?.abort()
    this.#semantic = null
  }
}
