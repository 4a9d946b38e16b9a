/**
 * One request's part in limits and usage: the admission it holds (reserved tokens, a concurrency
 * slot) and who it is for. `end()` runs exactly once when the response is over, whatever way it
 * ended: it reconciles the admission with the usage the upstream reported and books the usage.
 */
import type { ServerResponse } from 'node:http'
import type { Principal } from '../auth/authenticator.ts'
import type { Admission, Limiter } from './limiter.ts'
import type { UsageLedger } from './usage.ts'

export interface TokenUsage {
  readonly prompt: number
  readonly completion: number
}

export class Metering {
  readonly #admission: Admission
  readonly #principal: Principal
  readonly #model: string
  readonly #limiter: Limiter
  readonly #ledger: UsageLedger
  #ended = false

  constructor(admission: Admission, principal: Principal, model: string, limiter: Limiter, ledger: UsageLedger) {
    this.#admission = admission
    this.#principal = principal
    this.#model = model
    this.#limiter = limiter
    this.#ledger = ledger
  }

  /** Sets the x-ratelimit-* headers on a response not yet written. */
  writeHeaders(res: ServerResponse): void {
    if (!this.#limiter.sendsHeaders) return
    const h = this.#admission.headers()
    if (h === null) return
    for (let i = 0; i < h.names.length; i++) res.setHeader(h.names[i]!, h.values[i]!)
  }

  /**
   * `usage`: what the upstream reported, or null. `answered`: an upstream (or the cache) produced
   * the response; a request that got none gives its token reservation back. `fromCache`: served by
   * the cache, so no GPU tokens were used.
   */
  end(usage: TokenUsage | null, answered: boolean, fromCache = false): void {
    if (this.#ended) return
    this.#ended = true
    const tokens = fromCache ? { inputTokens: 0, outputTokens: 0 } : usage === null ? null : { inputTokens: usage.prompt, outputTokens: usage.completion }
    this.#admission.settle(tokens, answered && !fromCache)
    if (!answered) return
    const input = tokens?.inputTokens ?? 0
    const output = tokens?.outputTokens ?? 0
    this.#ledger.record({ tenant: this.#principal.tenant, keyName: this.#principal.keyName, model: this.#model, inputTokens: input, outputTokens: output, cost: this.#limiter.costOf(this.#model, input, output) })
  }
}
