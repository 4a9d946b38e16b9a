/**
 * Usage accounting: per tenant, key and model, requests, input and output tokens and cost, as
 * Prometheus counters (labels from the config only: unknown models count as `other`) and as
 * totals per UTC day for the admin usage endpoint. With Redis the daily totals are shared by every
 * replica (batched: one round trip a second at most, each batch applied exactly once even when
 * its answer is lost) and survive restarts; without it they are this process's own.
 */
import { Counter, type Registry } from 'prom-client'
import type { Redis } from 'ioredis'

export interface UsageRecord {
  readonly tenant: string
  readonly keyName: string
  readonly model: string
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cost: number
}

export interface UsageRow {
  tenant: string
  key: string
  model: string
  requests: number
  inputTokens: number
  outputTokens: number
  cost: number
}

const FLUSH_MS = 1_000
const DAY_TTL_S = 40 * 86_400
const FIELDS = ['requests', 'inputTokens', 'outputTokens', 'cost'] as const
/** How long Redis remembers that a batch was applied: far longer than any retry of it. */
const BATCH_MARK_TTL_S = 86_400

/**
 * Applies one batch at most once: KEYS[1] marks the batch id, KEYS[2..] are the day hashes;
 * ARGV: the mark's and the hashes' TTLs, then per increment the hash's index in KEYS, the
 * field, `i` (integer) or `f` (float) and the amount. A batch whose answer was lost (a timeout
 * after Redis applied it) is sent again with the same id and changes nothing the second time.
 */
const APPLY_BATCH = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV, 4 do
  local key = KEYS[tonumber(ARGV[i])]
  if ARGV[i + 2] == 'f' then redis.call('HINCRBYFLOAT', key, ARGV[i + 1], ARGV[i + 3])
  else redis.call('HINCRBY', key, ARGV[i + 1], ARGV[i + 3]) end
end
for k = 2, #KEYS do redis.call('EXPIRE', KEYS[k], ttl) end
return 1
`

interface Batch {
  /** The batch's id key, then the day hashes. */
  readonly keys: string[]
  readonly args: (string | number)[]
}

type BatchClient = Redis & { vxUsageBatch(...args: (string | number)[]): Promise<number> }

export function utcDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10)
}

export class UsageLedger {
  readonly #requests: Counter<'tenant' | 'key' | 'model'>
  readonly #tokens: Counter<'tenant' | 'key' | 'model' | 'kind'>
  readonly #cost: Counter<'tenant' | 'key' | 'model'>
  #labelModels: ReadonlySet<string>
  #labelKeys: ReadonlySet<string>
  /** day -> "tenant\0key\0model" -> totals (this process's share not yet flushed, when shared). */
  readonly #local = new Map<string, Map<string, UsageRow>>()
  readonly #pending = new Map<string, Map<string, UsageRow>>()
  readonly #redis: BatchClient | null
  readonly #prefix: string
  #flusher: NodeJS.Timeout | null = null
  /** The batch sent whose outcome is unknown (failed or timed out): re-sent first, with its id. */
  #unsettled: Batch | null = null
  #batchSeq = 0
  readonly #batchPrefix: string

  constructor(registry: Registry, redis: Redis | null = null, keyPrefix = 'velox:') {
    this.#requests = new Counter({ name: 'velox_usage_requests_total', help: 'Requests answered, by tenant, API key and model', labelNames: ['tenant', 'key', 'model'], registers: [registry] })
    this.#tokens = new Counter({ name: 'velox_usage_tokens_total', help: 'Tokens used, by tenant, API key, model and kind (input|output)', labelNames: ['tenant', 'key', 'model', 'kind'], registers: [registry] })
    this.#cost = new Counter({ name: 'velox_usage_cost_total', help: 'Spend from the limits price table, by tenant, API key and model', labelNames: ['tenant', 'key', 'model'], registers: [registry] })
    this.#labelModels = new Set()
    this.#labelKeys = new Set()
    if (redis !== null && typeof (redis as unknown as Partial<BatchClient>).vxUsageBatch !== 'function') redis.defineCommand('vxUsageBatch', { lua: APPLY_BATCH })
    this.#redis = redis as unknown as BatchClient | null
    this.#prefix = keyPrefix + 'usage:'
    this.#batchPrefix = `${keyPrefix}usage-batch:${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-`
  }

  /** Daily totals are every replica's, through Redis (false: this process's own). */
  get shared(): boolean {
    return this.#redis !== null
  }

  /** The label values allowed, from the running config: configured models and key names. */
  setLabels(models: Iterable<string>, keys: Iterable<string>): void {
    this.#labelModels = new Set(models)
    this.#labelKeys = new Set(keys)
  }

  start(): void {
    if (this.#redis === null || this.#flusher !== null) return
    this.#flusher = setInterval(() => void this.flush().catch(() => {}), FLUSH_MS)
    this.#flusher.unref()
  }

  record(u: UsageRecord, now = Date.now()): void {
    const key = this.#labelKeys.has(u.keyName) ? u.keyName : u.keyName === 'anonymous' ? 'anonymous' : 'other'
    const tenant = key === 'other' ? 'other' : u.tenant
    const model = this.#labelModels.has(u.model) ? u.model : 'other'
    this.#requests.inc({ tenant, key, model })
    if (u.inputTokens > 0) this.#tokens.inc({ tenant, key, model, kind: 'input' }, u.inputTokens)
    if (u.outputTokens > 0) this.#tokens.inc({ tenant, key, model, kind: 'output' }, u.outputTokens)
    if (u.cost > 0) this.#cost.inc({ tenant, key, model }, u.cost)
    const day = utcDay(now)
    add(this.#redis === null ? this.#local : this.#pending, day, tenant, key, model, u)
  }

  /** Totals for a UTC day (`YYYY-MM-DD`): across replicas with Redis, this process's otherwise. */
  async day(day: string): Promise<UsageRow[]> {
    if (this.#redis === null) return [...(this.#local.get(day)?.values() ?? [])].map((r) => ({ ...r }))
    await this.flush()
    const hash = await this.#redis.hgetall(this.#prefix + day)
    const rows = new Map<string, UsageRow>()
    for (const [field, value] of Object.entries(hash)) {
      const parts = field.split('\0')
      if (parts.length !== 4) continue
      const [tenant, key, model, name] = parts as [string, string, string, (typeof FIELDS)[number]]
      const id = tenant + '\0' + key + '\0' + model
      let row = rows.get(id)
      if (row === undefined) rows.set(id, (row = { tenant, key, model, requests: 0, inputTokens: 0, outputTokens: 0, cost: 0 }))
      if (FIELDS.includes(name)) row[name] = Number(value)
    }
    return [...rows.values()]
  }

  /**
   * Sends what was counted since the last flush to Redis, exactly once: each batch carries an id
   * Redis remembers, so a batch whose answer was lost is re-sent (first, before newer counts) and
   * applied only if it was not already.
   */
  async flush(): Promise<void> {
    const redis = this.#redis
    if (redis === null) return
    for (;;) {
      let batch = this.#unsettled
      if (batch === null) {
        // Counts made while a batch is unsettled wait in `pending`: one batch at most is open.
        if (this.#pending.size === 0) return
        batch = this.#unsettled = this.#batchOf([...this.#pending])
        this.#pending.clear()
      }
      // Throws on failure or timeout: the batch stays, to be re-sent with its id.
      await redis.vxUsageBatch(batch.keys.length, ...batch.keys, BATCH_MARK_TTL_S, DAY_TTL_S, ...batch.args)
      if (this.#unsettled === batch) this.#unsettled = null
    }
  }

  #batchOf(rows: [string, Map<string, UsageRow>][]): Batch {
    const keys = [this.#batchPrefix + String(++this.#batchSeq)]
    const args: (string | number)[] = []
    for (const [day, byId] of rows) {
      keys.push(this.#prefix + day)
      const index = keys.length
      for (const [id, row] of byId) {
        for (const f of FIELDS) if (row[f] !== 0) args.push(index, id + '\0' + f, f === 'cost' ? 'f' : 'i', row[f])
      }
    }
    return { keys, args }
  }

  async close(): Promise<void> {
    if (this.#flusher !== null) clearInterval(this.#flusher)
    this.#flusher = null
    await this.flush().catch(() => {})
  }

  /** A batch was sent and not known to be applied (Redis failed or timed out); it is re-sent first. */
  get unsettled(): boolean {
    return this.#unsettled !== null
  }
}

function add(days: Map<string, Map<string, UsageRow>>, day: string, tenant: string, key: string, model: string, u: { inputTokens: number; outputTokens: number; cost: number }, requests = 1): void {
  let rows = days.get(day)
  if (rows === undefined) days.set(day, (rows = new Map()))
  const id = tenant + '\0' + key + '\0' + model
  let row = rows.get(id)
  if (row === undefined) rows.set(id, (row = { tenant, key, model, requests: 0, inputTokens: 0, outputTokens: 0, cost: 0 }))
  row.requests += requests
  row.inputTokens += u.inputTokens
  row.outputTokens += u.outputTokens
  row.cost += u.cost
  // Only the last 40 days are kept in memory.
  if (days.size > 40) days.delete(days.keys().next().value!)
}
