import { z } from 'zod'
import { PRIORITIES, type Priority } from '../auth/config.ts'
import { PLAIN_NAME, positiveInt } from '../config/primitives.ts'

const positive = z.number().positive()

/** Public model names: exact, or a prefix ending in `*` (`llama-*`); `*` alone matches every model. */
const ModelPattern = z.string().min(1).regex(/^[^*]*\*?$/, 'an exact model name or a prefix ending in "*"')

export const LimitMatchSchema = z.strictObject({
  /** Tenant the rule applies to; absent: every tenant. */
  tenant: z.string().min(1).optional(),
  /** API key (by its configured name); absent: every key. */
  key: z.string().min(1).optional(),
  /** Public model name or prefix (`llama-*`); absent: every model. */
  model: ModelPattern.optional(),
})

export const LIMIT_DIMENSIONS = [
  'requestsPerMinute',
  'tokensPerMinute',
  'inputTokensPerMinute',
  'outputTokensPerMinute',
  'concurrent',
  'tokensPerDay',
  'tokensPerMonth',
  'costPerDay',
  'costPerMonth',
] as const
export type LimitDimension = (typeof LIMIT_DIMENSIONS)[number]

export const LimitRuleSchema = z
  .strictObject({
    /** Label in metrics, logs and error messages; default `rule-<index>`. */
    name: z.string().regex(PLAIN_NAME).optional(),
    match: LimitMatchSchema.prefault({}),
    /**
     * Split the rule's counters by these fields: `[key]` gives every key its own allowance, `[]`
     * (the default) makes everything the rule matches share one.
     */
    per: z.array(z.enum(['tenant', 'key', 'model'])).default([]),
    /** Requests per sliding minute. */
    requestsPerMinute: positiveInt.optional(),
    /** Input + output tokens per sliding minute. */
    tokensPerMinute: positiveInt.optional(),
    inputTokensPerMinute: positiveInt.optional(),
    outputTokensPerMinute: positiveInt.optional(),
    /** Requests in flight at once, across every replica. */
    concurrent: positiveInt.optional(),
    /** Budgets: input + output tokens per UTC calendar day / month. */
    tokensPerDay: positiveInt.optional(),
    tokensPerMonth: positiveInt.optional(),
    /** Budgets in currency (units of `prices`) per UTC calendar day / month. */
    costPerDay: positive.optional(),
    costPerMonth: positive.optional(),
  })
  .refine((r) => LIMIT_DIMENSIONS.some((d) => r[d] !== undefined), 'a rule needs at least one limit (requestsPerMinute, tokensPerMinute, concurrent, ...)')

export const PriceSchema = z.strictObject({
  /** Price of one million input (prompt) tokens. */
  inputPerMillion: z.number().nonnegative(),
  /** Price of one million output (completion) tokens. */
  outputPerMillion: z.number().nonnegative(),
})

/**
 * The share of every bounded wait (an upstream's `pool.maxPending` queue, the saturation hold's
 * `maxHeld` and its `queueThreshold`) each priority class may fill; the rest is kept for the
 * classes above it. A less important class never gets more than a more important one.
 */
export const QueueSharesSchema = z
  .strictObject(Object.fromEntries(PRIORITIES.map((p) => [p, z.number().gt(0).max(1).optional()])) as Record<Priority, z.ZodOptional<z.ZodNumber>>)
  .transform((given) => Object.fromEntries(PRIORITIES.map((p) => [p, given[p] ?? DEFAULT_QUEUE_SHARES[p]])) as Record<Priority, number>)
  .superRefine((shares, ctx) => {
    for (let i = 1; i < PRIORITIES.length; i++) {
      const above = PRIORITIES[i - 1]!
      const p = PRIORITIES[i]!
      if (shares[p] > shares[above]) ctx.addIssue({ code: 'custom', path: [p], message: `${p} (${shares[p]}) may not get a larger share than ${above} (${shares[above]})` })
    }
  })

export const DEFAULT_QUEUE_SHARES: Readonly<Record<Priority, number>> = Object.freeze({ critical: 1, high: 1, normal: 1, low: 0.5, batch: 0.25 })

/** The shares as an array indexed by class (PRIORITY_CLASS order: critical first). */
export function classShares(shares: Readonly<Record<Priority, number>>): readonly number[] {
  return Object.freeze(PRIORITIES.map((p) => shares[p]))
}

export const LimitsSchema = z.strictObject({
  /** `redis`: counters shared by every replica through the top-level `redis` section; `memory`: this process only. */
  backend: z.enum(['memory', 'redis']).default('memory'),
  /** Every rule whose match fits a request applies; the first to run out refuses it. */
  rules: z.array(LimitRuleSchema).default([]),
  /** Per-model prices for cost budgets, by public model name or prefix (`gpt-4o*`). */
  prices: z.record(ModelPattern, PriceSchema).default({}),
  /** Output tokens reserved for a request that names no max_tokens / max_completion_tokens / max_output_tokens. */
  defaultMaxTokens: positiveInt.default(1024),
  /**
   * Largest share of a limit one replica takes from Redis at a time (a lease it then spends
   * locally with no round trip). Leases shrink as a limit fills, so the total stays exact.
   */
  leaseFraction: z.number().gt(0).max(0.5).default(0.05),
  /**
   * For streams under token limits whose client did not ask for usage, ask the upstream for it
   * (`stream_options.include_usage`) and take the usage event out of the client's stream, so the
   * reservation is reconciled with real usage. Turn off for upstreams that reject stream_options.
   */
  streamUsage: z.boolean().default(true),
  /** Send OpenAI's `x-ratelimit-*` headers on every response a rule covers. */
  headers: z.boolean().default(true),
  /** Share of each bounded queue a priority class may fill (see QueueSharesSchema). */
  queueShares: QueueSharesSchema.prefault({}),
})

export type LimitsConfig = z.output<typeof LimitsSchema>
export type LimitRule = z.output<typeof LimitRuleSchema>
export type LimitsConfigInput = z.input<typeof LimitsSchema>
