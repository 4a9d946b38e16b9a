/**
 * The access log: one structured line per request (`"msg":"access"`), sampled for successes and
 * rate-limited per cause for failures, serialized after the response is written (records queue
 * up and are logged together on the next turn of the event loop).
 */
import type { Logger } from './logger.ts'
import type { TelemetryConfig } from './config.ts'

export interface AccessRecord {
  id: string
  /** null for a request refused before its tenant was known. */
  tenant: string | null
  route: string
  model: string | null
  upstream: string | null
  member: string | null
  status: number
  cache: string | null
  /** Request received to first byte sent (ms); null when no byte came from an upstream. */
  ttftMs: number | null
  durationMs: number
  inputTokens: number | null
  outputTokens: number | null
  attempts: number
  /** GW_ERR_* code of a failed request, else null. */
  error: string | null
}

/**
 * At most `perMinute` lines per cause a minute; past that, lines are counted and the count is
 * reported on the cause's next line once the minute is over, so a flood says how big it was.
 */
export class FailureLimiter {
  readonly perMinute: number
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>()

  constructor(perMinute: number) {
    this.perMinute = perMinute
  }

  /** -1: drop this line; otherwise log it, with this many lines suppressed since the last one. */
  allow(cause: string, nowMs: number): number {
    let w = this.windows.get(cause)
    if (w === undefined) {
      // Bounded: causes are error codes and status codes; an odd flood of new ones resets the table.
      if (this.windows.size >= 1024) this.windows.clear()
      this.windows.set(cause, (w = { start: nowMs, count: 0, suppressed: 0 }))
    }
    if (nowMs - w.start >= 60_000) {
      w.start = nowMs
      w.count = 0
    }
    if (w.count >= this.perMinute) {
      w.suppressed++
      return -1
    }
    w.count++
    const suppressed = w.suppressed
    w.suppressed = 0
    return suppressed
  }
}

export class AccessLog {
  private readonly logger: Logger
  private readonly sampleRatio: number
  private readonly failures: FailureLimiter
  private queue: AccessRecord[] = []
  private scheduled = false
  private readonly flushBound = (): void => this.flush()

  constructor(config: TelemetryConfig['accessLog'], logger: Logger, failures: FailureLimiter) {
    this.logger = logger
    this.sampleRatio = config.sampleRatio
    this.failures = failures
  }

  record(r: AccessRecord): void {
    if (r.status < 400) {
      if (this.sampleRatio < 1 && Math.random() >= this.sampleRatio) return
    }
    this.queue.push(r)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flushBound)
    }
  }

  /** A request the gateway refused before proxying it (bad body, auth, unknown model). */
  refused(id: string, route: string, status: number, code: string, startedAt: number): void {
    this.record({ id, tenant: null, route, model: null, upstream: null, member: null, status, cache: null, ttftMs: null, durationMs: round(performance.now() - startedAt), inputTokens: null, outputTokens: null, attempts: 0, error: code })
  }

  flush(): void {
    this.scheduled = false
    const batch = this.queue
    this.queue = []
    const now = Date.now()
    for (const r of batch) {
      if (r.status >= 400) {
        const suppressed = this.failures.allow(`access:${r.error ?? r.status}`, now)
        if (suppressed < 0) continue
        if (suppressed > 0) (r as AccessRecord & { suppressed?: number }).suppressed = suppressed
        this.logger.warn(r, 'access')
      } else {
        this.logger.info(r, 'access')
      }
    }
  }
}

/** Milliseconds with microsecond resolution: enough for a log line, short to write. */
export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}
