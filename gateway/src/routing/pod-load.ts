/**
 * What an inference pod last said about itself (vLLM's /metrics), and the gateway's estimate of
 * its state now: the scraped queue plus the requests this gateway sent since the scrape. The pod's
 * numbers include other gateways' traffic; the delta covers the scrape interval, when our own
 * requests are the only news we have.
 */

export interface PodReport {
  running: number
  waiting: number
  /** 0..1 */
  kvUsage: number
}

export class PodLoad {
  running: number
  waiting: number
  /** `waiting` of the scrape before the last one. */
  waitingBefore: number
  kvUsage: number
  /** performance.now() of the last good scrape; 0 = never. */
  scrapedAt: number
  /** The member's in-flight count when it was scraped. */
  inFlightAtScrape: number
  /** Most requests ever seen running at once: the pod's batch size, learned. */
  maxRunning: number
  /** Consecutive failed scrapes. */
  failures: number

  constructor() {
    this.running = 0
    this.waiting = 0
    this.waitingBefore = 0
    this.kvUsage = 0
    this.scrapedAt = 0
    this.inFlightAtScrape = 0
    this.maxRunning = 0
    this.failures = 0
  }

  update(report: PodReport, inFlight: number, nowMs: number): void {
    this.running = report.running
    this.waitingBefore = this.waiting
    this.waiting = report.waiting
    this.kvUsage = report.kvUsage
    this.scrapedAt = nowMs
    this.inFlightAtScrape = inFlight
    if (report.running > this.maxRunning) this.maxRunning = report.running
    this.failures = 0
  }

  /**
   * The pod reports a real queue: requests waiting in two scrapes in a row. A request also shows
   * as waiting from its arrival to the engine's next step, and a step that prefills a long chunk
   * takes up to a few hundred ms on a slow GPU; that clears within the step, while a queue behind
   * a full batch or a full KV cache is still there a scrape later. (Not the batch size learned
   * from the largest `running` seen: a pod that never ran full would look full.)
   */
  queued(): boolean {
    return this.waiting > 0 && this.waitingBefore > 0
  }

  fresh(nowMs: number, staleAfterMs: number): boolean {
    return this.scrapedAt !== 0 && nowMs - this.scrapedAt <= staleAfterMs
  }

  /** Requests sent by this gateway since the scrape (never negative: finished ones are in the scrape). */
  sentSince(inFlight: number): number {
    const d = inFlight - this.inFlightAtScrape
    return d > 0 ? d : 0
  }

  /**
   * Running + waiting now, estimated: the scrape plus this gateway's own change since (requests
   * sent, minus its requests that finished), never below zero.
   */
  load(inFlight: number): number {
    const l = this.running + this.waiting + inFlight - this.inFlightAtScrape
    return l > 0 ? l : 0
  }

  /**
   * Waiting now, estimated: new requests fill free batch slots first (when the pod's batch size is
   * known from a saturated scrape), then queue.
   */
  queue(inFlight: number): number {
    const sent = this.sentSince(inFlight)
    if (this.waiting > 0) return this.waiting + sent
    const free = this.maxRunning > this.running ? this.maxRunning - this.running : 0
    return sent > free ? sent - free : 0
  }
}

const RUNNING = 'vllm:num_requests_running'
const WAITING = 'vllm:num_requests_waiting'
const KV_USAGE = 'vllm:kv_cache_usage_perc'
/** vLLM before 0.10 named the KV gauge this way. */
const KV_USAGE_OLD = 'vllm:gpu_cache_usage_perc'

/**
 * The three gauges from a Prometheus text exposition, summed over series (one per engine of a
 * data-parallel pod; KV use is averaged). Null when the text has no vLLM queue gauges.
 */
export function parseVllmMetrics(text: string): PodReport | null {
  let running = 0
  let waiting = 0
  let kv = 0
  let kvSeries = 0
  let seen = false
  let start = 0
  while (start < text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    if (text.charCodeAt(start) === 0x76 /* v */ && text.startsWith('vllm:', start)) {
      const line = text.slice(start, end)
      const name = metricName(line)
      if (name === RUNNING || name === WAITING || name === KV_USAGE || name === KV_USAGE_OLD) {
        const value = sampleValue(line)
        if (value !== null) {
          if (name === RUNNING) {
            running += value
            seen = true
          } else if (name === WAITING) {
            waiting += value
            seen = true
          } else {
            kv += value
            kvSeries++
          }
        }
      }
    }
    start = end + 1
  }
  if (!seen) return null
  return { running, waiting, kvUsage: kvSeries > 0 ? Math.min(1, Math.max(0, kv / kvSeries)) : 0 }
}

function metricName(line: string): string {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i)
    if (c === 0x7b /* { */ || c === 0x20 /* space */) return line.slice(0, i)
  }
  return line
}

/** The sample value after the name and labels (a timestamp may follow). */
function sampleValue(line: string): number | null {
  const close = line.lastIndexOf('}')
  const rest = (close === -1 ? line.slice(line.indexOf(' ')) : line.slice(close + 1)).trim()
  const space = rest.indexOf(' ')
  const value = Number(space === -1 ? rest : rest.slice(0, space))
  return Number.isFinite(value) && value >= 0 ? value : null
}
