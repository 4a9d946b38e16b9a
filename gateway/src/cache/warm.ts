/**
 * Cache warming from a JSONL file, one `(request, response)` pair per line:
 *
 *   {"tenant":"acme","endpoint":"chat.completions","request":{...body...},"response":{...body...}}
 *
 * Optional per line: `endUser`, `model` (the resolved model; defaults to `request.model`),
 * `endpoint` (defaults to `chat.completions`). `response` is the JSON body, or an SSE stream as a
 * string. Lines go through the same plan and validation as live traffic: a pair the live path
 * would not cache (temperature above 0, an error, a truncated stream) is skipped.
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { CACHE_ENDPOINTS, type CacheEndpoint } from './config.ts'
import type { LookupPlan } from './plan.ts'

interface WarmTarget {
  plan(req: { tenant: string; endUser: string | null; endpoint: CacheEndpoint; model: string; body: Record<string, unknown>; headers: Record<string, string> }): { mode: string }
  commit(plan: LookupPlan, contentType: string, body: Buffer): boolean
}

export interface WarmReport {
  loaded: number
  skipped: number
  invalid: number
}

export async function warmFromFile(file: string, cache: WarmTarget): Promise<WarmReport> {
  const report: WarmReport = { loaded: 0, skipped: 0, invalid: 0 }
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })
  for await (const line of lines) {
    if (line.trim().length === 0) continue
    let rec: Record<string, unknown>
    try {
      rec = JSON.parse(line) as Record<string, unknown>
    } catch {
      report.invalid++
      continue
    }
    const request = rec.request as Record<string, unknown> | undefined
    const endpoint = (rec.endpoint ?? 'chat.completions') as CacheEndpoint
    const model = rec.model ?? request?.model
    if (typeof rec.tenant !== 'string' || request === null || typeof request !== 'object' || typeof model !== 'string' || !CACHE_ENDPOINTS.includes(endpoint) || rec.response === undefined) {
      report.invalid++
      continue
    }
    const plan = cache.plan({ tenant: rec.tenant, endUser: typeof rec.endUser === 'string' ? rec.endUser : null, endpoint, model, body: request, headers: {} })
    if (plan.mode !== 'lookup') {
      report.skipped++
      continue
    }
    const sse = typeof rec.response === 'string'
    const body = Buffer.from(sse ? (rec.response as string) : JSON.stringify(rec.response))
    if (cache.commit(plan as LookupPlan, sse ? 'text/event-stream' : 'application/json', body)) report.loaded++
    else report.skipped++
  }
  return report
}
