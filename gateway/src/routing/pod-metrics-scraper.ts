/**
 * Reads every member's Prometheus endpoint on a short interval (hundreds of ms) and stores what
 * vLLM reports there (queue, batch, KV-cache use) on `member.pod`, for the inference-aware
 * balancer. The fetch is the caller's (the member's own pool), like the health checker's probe.
 *
 * A member whose endpoint keeps failing (not vLLM, or no /metrics) is asked again only every
 * 20th round, so a fleet of hosted upstreams does not cost a scrape each per interval. The
 * interval counts from a round's start; rounds do not overlap: a round that outlives the interval
 * delays the next one.
 */
import type { Member } from './member.ts'
import { PeriodicTask } from './periodic-task.ts'
import { parseVllmMetrics } from './pod-load.ts'

export type FetchMetrics<D> = (member: Member<D>, signal: AbortSignal) => Promise<string>

export interface PodMetricsScraperOptions<D> {
  readonly members: () => readonly Member<D>[]
  readonly fetch: FetchMetrics<D>
  readonly intervalMs: number
  readonly timeoutMs: number
  /** After each round (tests, and admission control re-checking held requests). */
  readonly onRound?: () => void
}

/** Failures in a row after which a member is only scraped every BACKOFF_ROUNDS rounds. */
const FAILURES_BEFORE_BACKOFF = 3
const BACKOFF_ROUNDS = 20

export class PodMetricsScraper<D> {
  private readonly opts: PodMetricsScraperOptions<D>
  private readonly task: PeriodicTask
  private round = 0
  /** When the scheduled round last began: the next one is due `intervalMs` after it. */
  private roundStartedAt = 0

  constructor(opts: PodMetricsScraperOptions<D>) {
    this.opts = opts
    this.task = new PeriodicTask(
      () => {
        this.roundStartedAt = performance.now()
        return this.scrapeOnce()
      },
      () => opts.intervalMs - (performance.now() - this.roundStartedAt),
    )
  }

  /** A round now, then one every `intervalMs` (idempotent). */
  start(): void {
    void this.task.start()
  }

  stop(): void {
    this.task.stop()
  }

  /** One round now (also what the timer runs). */
  async scrapeOnce(): Promise<void> {
    const round = this.round++
    const members = this.opts.members()
    await Promise.all(members.map((m) => (m.pod.failures >= FAILURES_BEFORE_BACKOFF && round % BACKOFF_ROUNDS !== 0 ? null : this.scrape(m))))
    this.opts.onRound?.()
  }

  private async scrape(member: Member<D>): Promise<void> {
    if (member.draining) return
    try {
      const text = await this.opts.fetch(member, AbortSignal.timeout(this.opts.timeoutMs))
      const report = parseVllmMetrics(text)
      if (report === null) member.pod.failures++
      else member.pod.update(report, member.inFlight, performance.now())
    } catch {
      member.pod.failures++
    }
  }

  /** Resolves when the scheduled round in progress (if any) is done. */
  settled(): Promise<void> {
    return this.task.settled()
  }
}
