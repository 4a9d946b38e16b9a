/**
 * Reads every member's Prometheus endpoint on a short interval (hundreds of ms) and stores what
 * vLLM reports there (queue, batch, KV-cache use) on `member.pod`, for the inference-aware
 * balancer. The fetch is the caller's (the member's own pool), like the health checker's probe.
 *
 * A member whose endpoint keeps failing (not vLLM, or no /metrics) is asked again only every
 * 20th round, so a fleet of hosted upstreams does not cost a scrape each per interval. Rounds do
 * not overlap: a round that outlives the interval delays the next one.
 */
import type { Member } from './member.ts'
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
  private timer: NodeJS.Timeout | null = null
  private running = false
  private round = 0
  private current: Promise<void> | null = null

  constructor(opts: PodMetricsScraperOptions<D>) {
    this.opts = opts
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.schedule(0)
  }

  stop(): void {
    this.running = false
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
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

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = null
      const started = performance.now()
      this.current = this.scrapeOnce().finally(() => {
        this.current = null
        if (this.running) this.schedule(Math.max(0, this.opts.intervalMs - (performance.now() - started)))
      })
    }, delayMs)
    this.timer.unref()
  }

  /** Resolves when the round in progress (if any) is done. */
  async settled(): Promise<void> {
    await this.current
  }
}
