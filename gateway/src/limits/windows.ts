/**
 * Counting windows. A window is `buckets` consecutive buckets; a count lives in the bucket it was
 * taken in and leaves the window when that bucket does. The per-minute limits slide in half-second
 * steps; a count stays for 121 buckets (60 to 60.5 s), so no 60 s span ever holds more than the
 * limit, and at most half a second of capacity is held back. Budgets are UTC calendar days
 * and months (one bucket, reset at midnight / the first of the month).
 */
export interface Window {
  readonly name: 'minute' | 'day' | 'month'
  readonly buckets: number
  /** The bucket a time (ms since the epoch) falls in. */
  bucket(now: number): number
  /** When a bucket starts (ms since the epoch). */
  start(bucket: number): number
  /** How long a counter must outlive its last write (ms). */
  readonly ttlMs: number
}

const MINUTE_BUCKET_MS = 500
const DAY_MS = 86_400_000

export const MINUTE: Window = Object.freeze({
  name: 'minute',
  buckets: 60_000 / MINUTE_BUCKET_MS + 1,
  bucket: (now: number) => Math.floor(now / MINUTE_BUCKET_MS),
  start: (b: number) => b * MINUTE_BUCKET_MS,
  ttlMs: 61_000,
})

export const DAY: Window = Object.freeze({
  name: 'day',
  buckets: 1,
  bucket: (now: number) => Math.floor(now / DAY_MS),
  start: (b: number) => b * DAY_MS,
  ttlMs: 2 * DAY_MS,
})

export const MONTH: Window = Object.freeze({
  name: 'month',
  buckets: 1,
  bucket: (now: number) => {
    const d = new Date(now)
    return d.getUTCFullYear() * 12 + d.getUTCMonth()
  },
  start: (b: number) => Date.UTC(Math.floor(b / 12), b % 12, 1),
  ttlMs: 32 * DAY_MS,
})

/** When the count taken in `bucket` leaves the window (ms since the epoch). */
export function leavesAt(window: Window, bucket: number): number {
  return window.start(bucket + window.buckets)
}

/** `1s`, `6m0s`, `2h3m0s`, `20ms`: the duration format of OpenAI's `x-ratelimit-reset-*` headers. */
export function formatReset(ms: number): string {
  if (ms <= 0) return '0s'
  if (ms < 1000) return `${Math.ceil(ms)}ms`
  let s = Math.ceil(ms / 1000)
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s -= m * 60
  if (h > 0) return `${h}h${m}m${s}s`
  if (m > 0) return `${m}m${s}s`
  return `${s}s`
}
