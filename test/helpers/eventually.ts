/** The one polling helper of the test suite: wait for a condition instead of sleeping. */
import { setTimeout as sleep } from 'node:timers/promises'

export interface EventuallyOptions {
  /** Give up after this long (default 10 s: generous, the machine may be loaded). */
  readonly timeoutMs?: number
  /** Time between two checks (default 20 ms). */
  readonly intervalMs?: number
  /** What is awaited, for the failure message. */
  readonly what?: string
}

/**
 * Calls `check` until it returns a truthy value, and returns that value. A falsy value or a
 * thrown error (e.g. a failed assertion) means "not yet"; past the deadline the last error, or a
 * timeout naming `what`, is thrown.
 */
export async function eventually<T>(check: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  const intervalMs = opts.intervalMs ?? 20
  const deadline = performance.now() + timeoutMs
  let last: unknown = null
  for (;;) {
    try {
      const v = await check()
      if (v) return v as NonNullable<T>
      last = null
    } catch (err) {
      last = err
    }
    if (performance.now() >= deadline) {
      const what = opts.what ?? 'a condition'
      if (last instanceof Error) {
        last.message = `timed out after ${timeoutMs} ms waiting for ${what}: ${last.message}`
        throw last
      }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    }
    await sleep(intervalMs)
  }
}
