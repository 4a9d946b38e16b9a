/**
 * `GET /usage` on the admin listener: requests, input and output tokens and cost per UTC day, per
 * tenant, key and model, from the usage ledger (shared by every replica through Redis when
 * `limits.backend` is `redis`, this process's own otherwise).
 *
 *   ?day=2026-12-01                 one day (default: today, UTC)
 *   ?from=2026-11-01&to=2026-11-30  an inclusive range of days (at most the 40 the ledger keeps)
 *   ?tenant=acme&key=acme-prod&model=llama-3  exact filters, each optional
 *   ?by=tenant,model                what a row is (any of tenant, key, model; default all three)
 *
 * Answer: `{ from, to, by, shared, days: [{ day, rows, totals }], totals }`, rows sorted by tenant,
 * key, model; days with nothing counted are listed with no rows, so a range reads as a series.
 */
import { GatewayError } from '../errors.ts'
import type { UsageLedger, UsageRow } from '../limits/usage.ts'
import { utcDay } from '../limits/usage.ts'

/** Days the ledger keeps (limits/usage.ts), and so the longest range worth asking for. */
export const MAX_USAGE_DAYS = 40

const DAY = /^\d{4}-\d{2}-\d{2}$/
const FIELDS = ['tenant', 'key', 'model'] as const
type Field = (typeof FIELDS)[number]

export interface UsageQuery {
  day?: unknown
  from?: unknown
  to?: unknown
  tenant?: unknown
  key?: unknown
  model?: unknown
  by?: unknown
}

export interface UsageTotals {
  requests: number
  inputTokens: number
  outputTokens: number
  cost: number
}

export type UsageReportRow = Partial<Record<Field, string>> & UsageTotals

export interface UsageReport {
  from: string
  to: string
  by: Field[]
  /** Totals of every replica sharing the Redis (true), or this process's alone (false). */
  shared: boolean
  days: { day: string; rows: UsageReportRow[]; totals: UsageTotals }[]
  totals: UsageTotals
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('GW_ERR_INVALID_QUERY', message, { param })
}

function parseDay(raw: unknown, param: string): number {
  if (typeof raw !== 'string' || !DAY.test(raw)) throw invalid(`${param} must be a UTC day, YYYY-MM-DD`, param)
  const t = Date.parse(`${raw}T00:00:00Z`)
  if (!Number.isFinite(t) || utcDay(t) !== raw) throw invalid(`${param} "${raw}" is not a calendar day`, param)
  return t
}

function filter(raw: unknown, param: Field): string | null {
  if (raw === undefined) return null
  if (typeof raw !== 'string' || raw === '' || raw.length > 256) throw invalid(`${param} must be given once, as a non-empty name`, param)
  return raw
}

function parseBy(raw: unknown): Field[] {
  if (raw === undefined) return [...FIELDS]
  if (typeof raw !== 'string') throw invalid('by must be given once: a comma-separated list of tenant, key, model', 'by')
  const given = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const f of given) if (!(FIELDS as readonly string[]).includes(f)) throw invalid(`by: "${f}" is not one of tenant, key, model`, 'by')
  // Rows always come in the same field order, whatever order was asked.
  return FIELDS.filter((f) => given.includes(f))
}

const zero = (): UsageTotals => ({ requests: 0, inputTokens: 0, outputTokens: 0, cost: 0 })

function add(into: UsageTotals, row: UsageTotals): void {
  into.requests += row.requests
  into.inputTokens += row.inputTokens
  into.outputTokens += row.outputTokens
  into.cost += row.cost
}

/** Costs are sums of floating-point prices: rounded to a millionth so totals read cleanly. */
function rounded(t: UsageTotals): UsageTotals {
  t.cost = Math.round(t.cost * 1e6) / 1e6
  return t
}

/** Validates the query; throws GW_ERR_INVALID_QUERY naming the parameter. */
export function parseUsageQuery(q: UsageQuery, now = Date.now()): { fromMs: number; toMs: number; tenant: string | null; key: string | null; model: string | null; by: Field[] } {
  if (q.day !== undefined && (q.from !== undefined || q.to !== undefined)) throw invalid('give either day, or from and to', 'day')
  let fromMs: number
  let toMs: number
  if (q.from !== undefined || q.to !== undefined) {
    fromMs = parseDay(q.from ?? utcDay(now), 'from')
    toMs = parseDay(q.to ?? utcDay(now), 'to')
    if (toMs < fromMs) throw invalid('to is before from', 'to')
    if ((toMs - fromMs) / 86_400_000 + 1 > MAX_USAGE_DAYS) throw invalid(`a range covers at most ${MAX_USAGE_DAYS} days (the totals kept)`, 'from')
  } else {
    fromMs = toMs = parseDay(q.day ?? utcDay(now), 'day')
  }
  return { fromMs, toMs, tenant: filter(q.tenant, 'tenant'), key: filter(q.key, 'key'), model: filter(q.model, 'model'), by: parseBy(q.by) }
}

/** Reads the ledger for the query; GW_ERR_USAGE_UNAVAILABLE when the shared totals cannot be read. */
export async function usageReport(ledger: UsageLedger, q: UsageQuery, now = Date.now()): Promise<UsageReport> {
  const { fromMs, toMs, tenant, key, model, by } = parseUsageQuery(q, now)
  const dayNames: string[] = []
  for (let t = fromMs; t <= toMs; t += 86_400_000) dayNames.push(utcDay(t))
  let perDay: UsageRow[][]
  try {
    perDay = await Promise.all(dayNames.map((d) => ledger.day(d)))
  } catch (err) {
    throw new GatewayError('GW_ERR_USAGE_UNAVAILABLE', (err as Error).message, { retryAfter: 1 })
  }
  const totals = zero()
  const days = dayNames.map((day, i) => {
    const grouped = new Map<string, UsageReportRow>()
    const dayTotals = zero()
    for (const r of perDay[i]!) {
      if ((tenant !== null && r.tenant !== tenant) || (key !== null && r.key !== key) || (model !== null && r.model !== model)) continue
      const id = by.map((f) => (f === 'tenant' ? r.tenant : f === 'key' ? r.key : r.model)).join('\0')
      let row = grouped.get(id)
      if (row === undefined) {
        row = {} as UsageReportRow
        for (const f of by) row[f] = f === 'tenant' ? r.tenant : f === 'key' ? r.key : r.model
        Object.assign(row, zero())
        grouped.set(id, row)
      }
      add(row, r)
      add(dayTotals, r)
    }
    add(totals, dayTotals)
    const rows = [...grouped.values()].sort((a, b) => {
      for (const f of by) {
        const c = (a[f] ?? '').localeCompare(b[f] ?? '')
        if (c !== 0) return c
      }
      return 0
    })
    for (const row of rows) rounded(row)
    return { day, rows, totals: rounded(dayTotals) }
  })
  return { from: dayNames[0]!, to: dayNames.at(-1)!, by, shared: ledger.shared, days, totals: rounded(totals) }
}
