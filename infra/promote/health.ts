/**
 * The health gate between promotion steps: a region passes when its gateway answers /readyz with
 * 200 several times in a row within a deadline; any streak is broken by a failure.
 */
export interface HealthGateOptions {
  /** Base URL of the region (its regionalUrl output). */
  readonly url: string
  /** Consecutive 200s required. */
  readonly successes: number
  /** Give up after this long (ms). */
  readonly deadlineMs: number
  /** Pause between probes (ms). */
  readonly intervalMs: number
  /** Per-probe timeout (ms). */
  readonly timeoutMs: number
}

export interface HealthGateResult {
  readonly healthy: boolean
  readonly probes: number
  readonly failures: number
  readonly lastError: string | null
}

export async function healthGate(o: HealthGateOptions): Promise<HealthGateResult> {
  const target = new URL('/readyz', o.url).href
  const deadline = Date.now() + o.deadlineMs
  let streak = 0, probes = 0, failures = 0
  let lastError: string | null = null
  while (Date.now() < deadline) {
    probes++
    try {
      const res = await fetch(target, { signal: AbortSignal.timeout(o.timeoutMs), redirect: 'manual' })
      await res.arrayBuffer()
      if (res.status === 200) {
        streak++
        if (streak >= o.successes) return { healthy: true, probes, failures, lastError }
      } else {
        streak = 0; failures++; lastError = `HTTP ${res.status}`
      }
    } catch (err) {
      streak = 0; failures++; lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(o.intervalMs, deadline - Date.now()))))
  }
  return { healthy: false, probes, failures, lastError }
}
