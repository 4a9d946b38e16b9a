/**
 * Fault injection settings. A request takes the settings in force when it arrives, so changing
 * faults never alters a response that is already under way.
 */

export interface Faults {
  /** Answer every request with this status and an OpenAI-shaped error body (e.g. 500, 429, 503). */
  status: number | null
  /** When set, only the next N requests get `status`; then `status` clears itself. */
  statusCount: number | null
  /** Adds `Retry-After` to 429 and 503 answers. */
  retryAfterSeconds: number | null
  /** Reset the connection (TCP RST) instead of answering. */
  resetBeforeHeaders: boolean
  /** Wait this long before sending response headers. */
  stallBeforeHeadersMs: number
  /** Send the 200 headers, then wait this long before the first byte of the body. */
  stallAfterHeadersMs: number
  /** Send N stream events, then reset the connection. */
  resetAfterChunks: number | null
  /** Send N stream events, then go silent until the client goes away. */
  hangAfterChunks: number | null
  /** In a 200 stream, send one error event first and end the stream. */
  errorEventFirst: boolean
  /** Overrides the configured delay between stream events. */
  interTokenMs: number | null
}

export const NO_FAULTS: Readonly<Faults> = Object.freeze({
  status: null,
  statusCount: null,
  retryAfterSeconds: null,
  resetBeforeHeaders: false,
  stallBeforeHeadersMs: 0,
  stallAfterHeadersMs: 0,
  resetAfterChunks: null,
  hangAfterChunks: null,
  errorEventFirst: false,
  interTokenMs: null,
})

type Check = (value: unknown) => boolean

const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0
const isMs = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 2_147_483_647
const isBool = (v: unknown): boolean => typeof v === 'boolean'
const orNull = (check: Check): Check => (v) => v === null || check(v)

const CHECKS: Readonly<Record<keyof Faults, readonly [Check, string]>> = {
  status: [orNull((v) => Number.isInteger(v) && (v as number) >= 400 && (v as number) <= 599), 'null or an integer status 400-599'],
  statusCount: [orNull(isCount), 'null or a non-negative integer'],
  retryAfterSeconds: [orNull(isCount), 'null or a non-negative integer'],
  resetBeforeHeaders: [isBool, 'a boolean'],
  stallBeforeHeadersMs: [isMs, 'a non-negative number of milliseconds'],
  stallAfterHeadersMs: [isMs, 'a non-negative number of milliseconds'],
  resetAfterChunks: [orNull(isCount), 'null or a non-negative integer'],
  hangAfterChunks: [orNull(isCount), 'null or a non-negative integer'],
  errorEventFirst: [isBool, 'a boolean'],
  interTokenMs: [orNull(isMs), 'null or a non-negative number of milliseconds'],
}

/** Checks an untrusted patch (e.g. from `POST /_sim/faults`); throws a TypeError naming the bad key. */
export function validateFaultsPatch(patch: unknown): Partial<Faults> {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new TypeError('faults must be a JSON object')
  }
  for (const [key, value] of Object.entries(patch)) {
    const check = Object.hasOwn(CHECKS, key) ? CHECKS[key as keyof Faults] : undefined
    if (check === undefined) throw new TypeError(`unknown fault "${key}"`)
    if (!check[0](value)) throw new TypeError(`fault "${key}" must be ${check[1]}`)
  }
  return patch as Partial<Faults>
}

/** Merges a validated patch; returns NO_FAULTS itself when nothing is set, which keeps the fast path cheap. */
export function mergeFaults(current: Readonly<Faults>, patch: Partial<Faults>): Readonly<Faults> {
  const next: Faults = { ...current }
  for (const key of Object.keys(CHECKS) as (keyof Faults)[]) {
    const value = patch[key]
    if (value !== undefined) (next as unknown as Record<string, unknown>)[key] = value
  }
  return isClear(next) ? NO_FAULTS : Object.freeze(next)
}

function isClear(f: Faults): boolean {
  for (const key of Object.keys(CHECKS) as (keyof Faults)[]) {
    if (f[key] !== NO_FAULTS[key]) return false
  }
  return true
}
