/**
 * The id of a request: the client's `x-request-id` when it is a usable token, else one generated
 * here. A client's id is kept only when it is short and plain, so it can go into headers, logs and
 * span attributes as it is.
 *
 * A generated id is UUID-shaped (8-4-4-4-12 hex digits): the first 20 digits are random, drawn once
 * per process, the last 12 a counter of the process's requests. So ids are unique across processes
 * and restarts (74 random bits per process, a UUID's version and variant digits kept) without the cost of a random UUID per request (the
 * CSPRNG's batch, its buffer and the formatting were 0.6 KB of garbage per request). An id is a
 * correlation handle, not a secret: nothing grants access by knowing one.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

export const REQUEST_ID_HEADER = 'x-request-id'
const USABLE = /^[\w.:/+=@-]{1,128}$/

/** 12 hex digits: 2^48 requests before the counter would wrap. */
const COUNTER_DIGITS = 12
const COUNTER_LIMIT = 2 ** 48

/** Generates the ids of one process: a random prefix, then a counter. */
export class RequestIds {
  readonly #limit: number
  /** The next id's characters: the prefix, then the counter's hex digits, counted up in place. */
  readonly #id: Buffer
  #next: number

  /** `limit`: ids per prefix before a new one is drawn (tests shorten it). */
  constructor(limit: number = COUNTER_LIMIT) {
    this.#limit = Math.min(limit, COUNTER_LIMIT)
    this.#id = Buffer.alloc(36)
    this.#next = 0
    this.#reseed()
  }

  #reseed(): void {
    // The first four groups (8-4-4-4 digits and their dashes) of a fresh version-4 UUID, so the
    // version digit (4) and the variant digit stay where a UUID parser expects them.
    this.#id.write(randomUUID().slice(0, 36 - COUNTER_DIGITS), 0, 'latin1')
    this.#id.fill(0x30, 36 - COUNTER_DIGITS)
    this.#next = 0
  }

  /** One flat string per id (a prefix joined to a padded counter made three strings and a rope). */
  next(): string {
    if (this.#next >= this.#limit) this.#reseed()
    this.#next++
    const id = this.#id
    const out = id.toString('latin1', 0, 36)
    // Count up: 0-9, then a-f, carrying into the digit before.
    for (let i = 35; i >= 36 - COUNTER_DIGITS; i--) {
      const c = id[i]!
      if (c === 0x39) {
        id[i] = 0x61
        break
      }
      if (c !== 0x66) {
        id[i] = c + 1
        break
      }
      id[i] = 0x30
    }
    return out
  }
}

const generated = new RequestIds()

export function requestId(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER]
  return typeof given === 'string' && USABLE.test(given) ? given : generated.next()
}
