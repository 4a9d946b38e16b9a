/**
 * What lives across config reloads for limits and usage: the counter store (memory or Redis),
 * the usage ledger and their metrics. Each runtime snapshot builds its own `Limiter` (its rules)
 * over this one store, so a reload keeps every count.
 */
import { Counter, type Registry } from 'prom-client'
import type { GatewayConfig } from '../config/schema.ts'
import type { LimitsConfig } from './config.ts'
import { Limiter } from './limiter.ts'
import { RedisLimitStore } from './redis-store.ts'
import { MemoryLimitStore, type LimitStore } from './store.ts'
import { UsageLedger } from './usage.ts'

export { Limiter, UNLIMITED, type Admission, type LimitSubject } from './limiter.ts'
export { estimateCost } from './estimate.ts'
export { LimitsSchema, classShares, type LimitsConfig } from './config.ts'

export interface TenancyLogger {
  warn(obj: object, msg: string): void
}

const FALLBACK_LOG_MS = 10_000

export class Tenancy {
  readonly store: LimitStore
  readonly usage: UsageLedger
  readonly #refusals: Counter<'rule' | 'dimension'>
  readonly #fallbacks: Counter<'op'>
  #lastFallbackLog = 0

  constructor(config: GatewayConfig, registry: Registry, logger: TenancyLogger) {
    this.#refusals = new Counter({ name: 'velox_limit_refusals_total', help: 'Requests refused by a limit, by rule and dimension', labelNames: ['rule', 'dimension'], registers: [registry] })
    this.#fallbacks = new Counter({ name: 'velox_limit_store_fallbacks_total', help: 'Limit decisions made locally because Redis failed or timed out, by operation', labelNames: ['op'], registers: [registry] })
    if (config.limits.backend === 'redis' && config.redis.url !== undefined) {
      const redis = new RedisLimitStore(
        { url: config.redis.url, passwordEnv: config.redis.passwordEnv, keyPrefix: config.redis.keyPrefix, connectTimeoutMs: config.redis.connectTimeoutMs, commandTimeoutMs: config.redis.commandTimeoutMs },
        {
          fallback: (op, err) => {
            this.#fallbacks.inc({ op })
            const now = Date.now()
            if (now - this.#lastFallbackLog < FALLBACK_LOG_MS) return
            this.#lastFallbackLog = now
            logger.warn({ op, err: err.message }, 'limits: Redis failed; deciding locally within this replica\'s share')
          },
        },
      )
      this.store = redis
      this.usage = new UsageLedger(registry, redis.client, config.redis.keyPrefix)
    } else {
      this.store = new MemoryLimitStore()
      this.usage = new UsageLedger(registry)
    }
  }

  /** The limiter for one snapshot's rules, over the shared store. */
  limiter(config: LimitsConfig): Limiter {
    return new Limiter(config, this.store, { refused: (rule, dimension) => this.#refusals.inc({ rule, dimension }) })
  }

  start(): void {
    this.store.start()
    this.usage.start()
  }

  async close(): Promise<void> {
    await this.usage.close()
    await this.store.close()
  }
}
