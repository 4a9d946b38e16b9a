/**
 * Limits as the request path sees them: `admit()` before dispatch reserves what a request may
 * cost against every rule that matches it (tightest first to run out refuses), and the
 * admission's `settle()` reconciles with the real usage when the response ends. Counts live in a
 * `LimitStore` (memory, or Redis shared by every replica); this class only compiles rules, finds
 * a request's counters, and turns a refusal into the OpenAI-shaped 429.
 */
import { GatewayError } from '../errors.ts'
import type { LimitDimension, LimitRule, LimitsConfig } from './config.ts'
import { GaugeCounter, Refused, WindowCounter, type Taken } from './counter.ts'
import type { CostEstimate } from './estimate.ts'
import type { LimitStore } from './store.ts'
import { DAY, MINUTE, MONTH, formatReset, type Window } from './windows.ts'

export interface LimitSubject {
  readonly tenant: string
  /** The API key's configured name. */
  readonly keyName: string
  /** The public model name the client asked for. */
  readonly model: string
}

export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
}

type Amount = 'requests' | 'tokens' | 'input' | 'output' | 'cost' | 'concurrent'

interface Dimension {
  readonly dim: LimitDimension
  readonly amount: Amount
  readonly window: Window | null
  /** In units of the amount (micro-units of currency for cost). */
  readonly limit: number
}

const DIMENSIONS: Record<LimitDimension, { amount: Amount; window: Window | null; unit: string }> = {
  requestsPerMinute: { amount: 'requests', window: MINUTE, unit: 'requests per minute' },
  tokensPerMinute: { amount: 'tokens', window: MINUTE, unit: 'tokens per minute' },
  inputTokensPerMinute: { amount: 'input', window: MINUTE, unit: 'input tokens per minute' },
  outputTokensPerMinute: { amount: 'output', window: MINUTE, unit: 'output tokens per minute' },
  concurrent: { amount: 'concurrent', window: null, unit: 'requests in flight' },
  tokensPerDay: { amount: 'tokens', window: DAY, unit: 'tokens per day' },
  tokensPerMonth: { amount: 'tokens', window: MONTH, unit: 'tokens per month' },
  costPerDay: { amount: 'cost', window: DAY, unit: 'spend per day' },
  costPerMonth: { amount: 'cost', window: MONTH, unit: 'spend per month' },
}

const MICRO = 1_000_000
/** Compiled counter sets kept for this many distinct (tenant, key, model) at most. */
const SUBJECT_CACHE = 10_000
/** Counters idle this long are dropped from memory (their counts live on in the store). */
const IDLE_MS = 120_000

class CompiledRule {
  readonly name: string
  readonly tenant: string | undefined
  readonly key: string | undefined
  readonly modelExact: string | undefined
  readonly modelPrefix: string | undefined
  readonly per: ReadonlySet<'tenant' | 'key' | 'model'>
  readonly dims: readonly Dimension[]

  constructor(rule: LimitRule, index: number) {
    this.name = rule.name ?? `rule-${index}`
    this.tenant = rule.match.tenant
    this.key = rule.match.key
    const m = rule.match.model
    this.modelPrefix = m?.endsWith('*') ? m.slice(0, -1) : undefined
    this.modelExact = m !== undefined && !m.endsWith('*') ? m : undefined
    this.per = new Set(rule.per)
    const dims: Dimension[] = []
    for (const dim of Object.keys(DIMENSIONS) as LimitDimension[]) {
      const v = rule[dim]
      if (v === undefined) continue
      const d = DIMENSIONS[dim]
      dims.push({ dim, amount: d.amount, window: d.window, limit: d.amount === 'cost' ? Math.round(v * MICRO) : v })
    }
    this.dims = dims
  }

  matches(s: LimitSubject): boolean {
    if (this.tenant !== undefined && this.tenant !== s.tenant) return false
    if (this.key !== undefined && this.key !== s.keyName) return false
    if (this.modelExact !== undefined && this.modelExact !== s.model) return false
    if (this.modelPrefix !== undefined && !s.model.startsWith(this.modelPrefix)) return false
    return true
  }

  /** The counter id for a subject: the rule, plus each `per` field's value. */
  subjectId(s: LimitSubject): string {
    let id = this.name
    if (this.per.has('tenant')) id += '|t=' + s.tenant
    if (this.per.has('key')) id += '|k=' + s.keyName
    if (this.per.has('model')) id += '|m=' + boundedModel(s.model)
    return id
  }
}

/** Model names come from clients (with `"*"` upstreams): long ones are hashed, so ids stay small. */
function boundedModel(model: string): string {
  if (model.length <= 128) return model
  let h = 0x811c9dc5
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 0x01000193)
  return `${model.slice(0, 64)}#${(h >>> 0).toString(16)}`
}

interface Slot {
  readonly rule: CompiledRule
  readonly dim: Dimension
  readonly counter: WindowCounter | GaugeCounter
}

interface Price {
  readonly input: number
  readonly output: number
}

export interface RateLimitHeaders {
  readonly names: readonly string[]
  readonly values: readonly string[]
}

export class Admission {
  readonly #slots: readonly Slot[]
  readonly #taken: (Taken | null)[]
  readonly #amounts: number[]
  readonly #price: Price | null
  #settled = false

  constructor(slots: readonly Slot[], taken: (Taken | null)[], amounts: number[], price: Price | null) {
    this.#slots = slots
    this.#taken = taken
    this.#amounts = amounts
    this.#price = price
  }

  /**
   * Reconciles the reservation with what the response used. `usage` null: unknown; a request
   * that never got an answer (`answered` false) gives its token reservation back.
   */
  settle(usage: Usage | null, answered: boolean, now = Date.now()): void {
    if (this.#settled) return
    this.#settled = true
    for (let i = 0; i < this.#slots.length; i++) {
      const slot = this.#slots[i]!
      const taken = this.#taken[i]
      if (taken === null || taken === undefined) continue
      const counter = slot.counter
      if (counter instanceof GaugeCounter) {
        counter.release()
        continue
      }
      const reserved = this.#amounts[i]!
      let actual: number
      if (slot.dim.amount === 'requests') continue
      if (usage !== null) actual = amountOf(slot.dim.amount, usage.inputTokens, usage.outputTokens, this.#price)
      else if (!answered) actual = 0
      else continue
      counter.adjust(taken.bucket, actual - reserved, now)
    }
  }

  /** OpenAI's `x-ratelimit-*` headers from the tightest request and token limits. */
  headers(now = Date.now()): RateLimitHeaders | null {
    let req: WindowCounter | null = null
    let tok: WindowCounter | null = null
    for (const slot of this.#slots) {
      const c = slot.counter
      if (!(c instanceof WindowCounter) || slot.dim.window !== MINUTE) continue
      if (slot.dim.amount === 'requests') {
        if (req === null || c.remaining() < req.remaining()) req = c
      } else if (slot.dim.amount === 'tokens') {
        if (tok === null || c.remaining() < tok.remaining()) tok = c
      }
    }
    if (req === null && tok === null) return null
    const names: string[] = []
    const values: string[] = []
    for (const [suffix, c] of [['requests', req], ['tokens', tok]] as const) {
      if (c === null) continue
      const remaining = c.remaining()
      names.push(`x-ratelimit-limit-${suffix}`, `x-ratelimit-remaining-${suffix}`, `x-ratelimit-reset-${suffix}`)
      values.push(String(c.limit), String(remaining), formatReset(((c.limit - remaining) / c.limit) * 60_000))
    }
    void now
    return { names, values }
  }
}

/** Admitted with no rule matching: nothing to settle, no headers. */
export const UNLIMITED = new Admission([], [], [], null)

export interface LimiterEvents {
  refused(rule: string, dim: LimitDimension): void
}

export class Limiter {
  readonly enabled: boolean
  /** Some rule counts tokens or cost: streams should report their usage. */
  readonly countsTokens: boolean
  readonly #rules: readonly CompiledRule[]
  readonly #store: LimitStore
  readonly #config: LimitsConfig
  readonly #events: LimiterEvents | null
  readonly #counters = new Map<string, WindowCounter | GaugeCounter>()
  readonly #subjects = new Map<string, readonly Slot[]>()
  readonly #prices: readonly { exact: string | null; prefix: string | null; price: Price }[]
  #sweeper: NodeJS.Timeout | null = null

  constructor(config: LimitsConfig, store: LimitStore, events: LimiterEvents | null = null) {
    this.#config = config
    this.#store = store
    this.#events = events
    this.#rules = config.rules.map((r, i) => new CompiledRule(r, i))
    this.enabled = this.#rules.length > 0
    this.countsTokens = config.streamUsage && this.#rules.some((r) => r.dims.some((d) => d.amount !== 'requests' && d.amount !== 'concurrent'))
    this.#prices = Object.entries(config.prices)
      .map(([pattern, p]) => ({
        exact: pattern.endsWith('*') ? null : pattern,
        prefix: pattern.endsWith('*') ? pattern.slice(0, -1) : null,
        price: { input: p.inputPerMillion, output: p.outputPerMillion },
      }))
      .sort((a, b) => (b.prefix?.length ?? Infinity) - (a.prefix?.length ?? Infinity))
  }

  get store(): LimitStore {
    return this.#store
  }

  get defaultMaxTokens(): number {
    return this.#config.defaultMaxTokens
  }

  get sendsHeaders(): boolean {
    return this.#config.headers
  }

  /** Starts the one-second tick that gives expired leases back (the store is started by its owner). */
  start(): void {
    if (this.#sweeper !== null) return
    let ticks = 0
    this.#sweeper = setInterval(() => {
      const now = Date.now()
      for (const c of this.#counters.values()) if (c instanceof WindowCounter) c.expire(now)
      if (++ticks % 30 === 0) this.sweep(now)
    }, 1_000)
    this.#sweeper.unref()
  }

  /** Stops the tick and gives every unspent lease back; the store stays open for the next snapshot. */
  close(now = Date.now()): void {
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
    this.#sweeper = null
    for (const c of this.#counters.values()) if (c instanceof WindowCounter) c.expire(Number.POSITIVE_INFINITY)
    void now
  }

  /** Drops counters nobody used lately; returns how many are kept. */
  sweep(now: number): number {
    for (const [id, c] of this.#counters) if (now - c.lastUsedAt > IDLE_MS && (c instanceof GaugeCounter ? c.remaining() === c.limit : true)) this.#counters.delete(id)
    this.#subjects.clear()
    return this.#counters.size
  }

  /**
   * Reserves the request's cost against every matching rule. Synchronous while this replica's
   * leases cover it; a Promise when the store must be asked. Refused: throws (or rejects with)
   * GW_ERR_RATE_LIMITED / GW_ERR_BUDGET_EXCEEDED with Retry-After.
   */
  admit(subject: LimitSubject, cost: CostEstimate, now = Date.now()): Admission | Promise<Admission> {
    if (!this.enabled) return UNLIMITED
    const slots = this.#slotsFor(subject)
    if (slots.length === 0) return UNLIMITED
    const price = this.#priceOf(subject.model)
    const amounts = slots.map((s) => amountOf(s.dim.amount, cost.inputTokens, cost.outputTokens, price))
    const taken: (Taken | null)[] = new Array(slots.length).fill(null)
    return this.#takeFrom(0, slots, amounts, taken, price, now)
  }

  #takeFrom(start: number, slots: readonly Slot[], amounts: number[], taken: (Taken | null)[], price: Price | null, now: number): Admission | Promise<Admission> {
    for (let i = start; i < slots.length; i++) {
      const slot = slots[i]!
      const n = amounts[i]!
      if (n <= 0 && slot.dim.amount !== 'concurrent') continue
      const r = slot.counter instanceof GaugeCounter ? slot.counter.take(now) : slot.counter.take(n, now)
      if (r instanceof Promise) {
        return r.then((res) => {
          const t = Date.now()
          this.#record(i, res, slots, amounts, taken, t)
          return this.#takeFrom(i + 1, slots, amounts, taken, price, t)
        })
      }
      this.#record(i, r, slots, amounts, taken, now)
    }
    return new Admission(slots, taken, amounts, price)
  }

  #record(i: number, r: Taken | Refused, slots: readonly Slot[], amounts: number[], taken: (Taken | null)[], now: number): void {
    if (!(r instanceof Refused)) {
      taken[i] = r
      return
    }
    for (let j = 0; j < i; j++) {
      const t = taken[j]
      if (t === null || t === undefined) continue
      const c = slots[j]!.counter
      if (c instanceof GaugeCounter) c.release()
      else c.refund(t, amounts[j]!, now)
    }
    const slot = slots[i]!
    this.#events?.refused(slot.rule.name, slot.dim.dim)
    throw refusal(slot, amounts[i]!, r.retryAt, now)
  }

  #slotsFor(s: LimitSubject): readonly Slot[] {
    const cacheKey = s.tenant + '\0' + s.keyName + '\0' + s.model
    const cached = this.#subjects.get(cacheKey)
    if (cached !== undefined) return cached
    const slots: Slot[] = []
    for (const rule of this.#rules) {
      if (!rule.matches(s)) continue
      const id = rule.subjectId(s)
      for (const dim of rule.dims) {
        const counterId = id + '|' + dim.dim
        let counter = this.#counters.get(counterId)
        if (counter === undefined) {
          counter = dim.window === null ? new GaugeCounter(counterId, dim.limit, this.#store, this.#config.leaseFraction) : new WindowCounter(counterId, dim.limit, dim.window, this.#store, this.#config.leaseFraction)
          this.#counters.set(counterId, counter)
        }
        slots.push({ rule, dim, counter })
      }
    }
    if (this.#subjects.size >= SUBJECT_CACHE) this.#subjects.clear()
    this.#subjects.set(cacheKey, slots)
    return slots
  }

  /** The price of some usage, in the units of `prices` (0 for a model without a price). */
  costOf(model: string, inputTokens: number, outputTokens: number): number {
    const price = this.#priceOf(model)
    return price === null ? 0 : (inputTokens * price.input + outputTokens * price.output) / MICRO
  }

  #priceOf(model: string): Price | null {
    for (const p of this.#prices) {
      if (p.exact !== null ? p.exact === model : model.startsWith(p.prefix!)) return p.price
    }
    return null
  }
}

function amountOf(amount: Amount, input: number, output: number, price: Price | null): number {
  switch (amount) {
    case 'requests':
    case 'concurrent':
      return 1
    case 'tokens':
      return input + output
    case 'input':
      return input
    case 'output':
      return output
    case 'cost':
      return price === null ? 0 : Math.ceil(input * price.input + output * price.output)
  }
}

function refusal(slot: Slot, amount: number, retryAt: number, now: number): GatewayError {
  const d = DIMENSIONS[slot.dim.dim]
  const budget = slot.dim.window === DAY || slot.dim.window === MONTH
  const shown = (v: number): string => (slot.dim.amount === 'cost' ? (v / MICRO).toFixed(2) : String(v))
  if (!Number.isFinite(retryAt)) {
    return new GatewayError(budget ? 'GW_ERR_BUDGET_EXCEEDED' : 'GW_ERR_RATE_LIMITED', `this request needs ${shown(amount)}, more than the whole limit of ${shown(slot.dim.limit)} ${d.unit} (rule ${slot.rule.name})`)
  }
  const retryAfter = Math.max(1, Math.ceil((retryAt - now) / 1000))
  return new GatewayError(budget ? 'GW_ERR_BUDGET_EXCEEDED' : 'GW_ERR_RATE_LIMITED', `limit of ${shown(slot.dim.limit)} ${d.unit} reached (rule ${slot.rule.name}); retry in ${retryAfter} s`, { retryAfter })
}
