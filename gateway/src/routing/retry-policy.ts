/**
 * Whether a failed attempt may be retried on another member: the failure kind is retryable, the
 * request has attempts left, and the shared retry budget has room. Built once from config.
 */
import { FAILURE_KINDS, type FailureKind, type RetryConfig } from './config.ts'
import { RetryBudget } from './retry-budget.ts'

const FAILURE_BIT = Object.fromEntries(FAILURE_KINDS.map((kind, i) => [kind, 1 << i])) as Record<FailureKind, number>

export class RetryPolicy {
  readonly maxAttempts: number
  readonly budget: RetryBudget
  private readonly retryableMask: number

  constructor(cfg: RetryConfig, budget?: RetryBudget) {
    this.maxAttempts = cfg.maxAttempts
    this.budget = budget ?? new RetryBudget({ ratio: cfg.budgetRatio, minPerSecond: cfg.budgetMinPerSecond })
    let mask = 0
    for (const kind of cfg.on) mask |= FAILURE_BIT[kind]
    this.retryableMask = mask
  }

  retryable(kind: FailureKind): boolean {
    return (this.retryableMask & FAILURE_BIT[kind]) !== 0
  }

  /** After `attempts` attempts of a request, may one more be sent (a retry or a hedge)? */
  hasAttemptsLeft(attempts: number): boolean {
    return attempts < this.maxAttempts
  }

  /**
   * After attempt number `attempt` (1-based) failed with `kind`: may another start, budget aside?
   * The caller spends budget (`budget.tryRetry`) once it has a member to retry on.
   */
  allows(kind: FailureKind, attempt: number): boolean {
    return attempt < this.maxAttempts && this.retryable(kind)
  }

  /** `allows`, then spends budget when the answer is true. */
  shouldRetry(kind: FailureKind, attempt: number, nowMs: number): boolean {
    return this.allows(kind, attempt) && this.budget.tryRetry(nowMs)
  }
}
