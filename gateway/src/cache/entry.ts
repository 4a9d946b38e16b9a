/**
 * A cached response and its stored (compressed) form. The stored form is what the memory store
 * holds and what Redis holds, byte for byte, so instances sharing a Redis read each other's entries.
 */
import { brotliCompress, brotliDecompressSync, constants as zc } from 'node:zlib'
import type { CacheEndpoint } from './config.ts'
import { normalizeResponse } from './normalize.ts'

export type BodyShape = 'json' | 'sse'

export interface CachedResponse {
  /** Exact key the entry was stored under. */
  readonly key: string
  /** Who may read it (tenant, tenant+user, or global); checked again on every hit. */
  readonly scope: string
  readonly endpoint: CacheEndpoint
  readonly status: 200
  /** Shape of `body`. Chat and completions entries are normalised to JSON; others keep what upstream sent. */
  readonly shape: BodyShape
  /** Shape the upstream answered in. */
  readonly sourceShape: BodyShape
  /** The stored answer carries token usage, so a stream that asks for usage can be given it. */
  readonly hasUsage: boolean
  readonly body: Buffer
  /** Uncompressed body bytes. */
  readonly size: number
  /** Epoch ms. */
  readonly storedAt: number
  readonly expiresAt: number
  /** Cosine similarity for a semantic hit; null for an exact one. */
  readonly similarity: number | null
}

export interface StoredEntry {
  readonly meta: EntryMeta
  /** Body, brotli-compressed when `meta.z` is 1. */
  readonly payload: Buffer
}

export interface EntryMeta {
  readonly v: 1
  readonly key: string
  readonly scope: string
  readonly endpoint: CacheEndpoint
  readonly shape: BodyShape
  readonly sourceShape: BodyShape
  readonly hasUsage: boolean
  readonly size: number
  readonly storedAt: number
  readonly expiresAt: number
  readonly z: 0 | 1
  /**
   * False for an answer kept as the upstream sent it, not yet validated (nor a stream folded):
   * `shape` is then the shape it arrived in and `hasUsage` unknown. Such an entry is served only
   * after `checkEntry` accepts it, and never leaves this process. Absent in entries written
   * before the field existed, which were all checked.
   */
  readonly checked: boolean
}

/**
 * Below this, compression costs more than it saves: a sync Brotli call on a 350-byte answer cost
 * about 150 µs of CPU here (most of it setting up the encoder) to save 170 bytes.
 */
export const COMPRESS_MIN_BYTES = 1024
/**
 * Brotli quality 5 with a 64 KiB window (answers are smaller than that; the default 4 MiB window
 * only costs set-up time). Decompression is the fastest of node's codecs for these sizes.
 */
const BROTLI_OPTS = { params: { [zc.BROTLI_PARAM_QUALITY]: 5, [zc.BROTLI_PARAM_LGWIN]: 16, [zc.BROTLI_PARAM_MODE]: zc.BROTLI_MODE_TEXT } }
/** Compressions running on libuv's pool at once: the pool (4 threads) also serves DNS and files. */
const COMPRESS_CONCURRENCY = 2
/** Entries waiting for compression; past this an entry simply stays uncompressed. */
const COMPRESS_QUEUE_MAX = 4096

/**
 * A buffer that owns exactly its bytes. zlib's output and undici's chunks are views into larger
 * allocations (16 KiB+): kept in a cache, each such view would pin its whole backing store, many
 * times the bytes the cache accounts for.
 */
function exact(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.length) return buf
  const own = Buffer.allocUnsafeSlow(buf.length)
  buf.copy(own)
  return own
}

function metaOf(r: CachedResponse, z: 0 | 1): EntryMeta {
  return {
    v: 1,
    key: r.key,
    scope: r.scope,
    endpoint: r.endpoint,
    shape: r.shape,
    sourceShape: r.sourceShape,
    hasUsage: r.hasUsage,
    size: r.size,
    storedAt: r.storedAt,
    expiresAt: r.expiresAt,
    z,
    checked: true,
  }
}

/** The entry as it can be stored right now: uncompressed, owning its bytes. Sync and cheap. */
export function storeEntry(r: CachedResponse): StoredEntry {
  return { meta: metaOf(r, 0), payload: exact(r.body) }
}

/**
 * An answer as received, kept without looking inside: the cheap store of the request path. Most
 * stored answers are never asked for again, so the validation (a JSON parse, or a stream fold)
 * is left to the first hit (`checkEntry`), and a miss costs a copy of the bytes.
 */
export function uncheckedEntry(key: string, scope: string, endpoint: CacheEndpoint, shape: BodyShape, body: Buffer, storedAt: number, expiresAt: number): StoredEntry {
  const meta: EntryMeta = { v: 1, key, scope, endpoint, shape, sourceShape: shape, hasUsage: false, size: body.length, storedAt, expiresAt, z: 0, checked: false }
  return { meta, payload: exact(body) }
}

/**
 * The servable form of an unchecked entry, or null when the answer is not a complete, successful
 * one (`normalizeResponse`'s rules). A checked entry comes back as it is. The payload is reused
 * when the check leaves the body as it was (a JSON answer), compressed or not.
 */
export function checkEntry(e: StoredEntry): StoredEntry | null {
  const m = e.meta
  if (m.checked !== false) return e
  const raw = m.z === 1 ? brotliDecompressSync(e.payload) : e.payload
  const n = normalizeResponse(m.endpoint, m.sourceShape === 'sse' ? 'text/event-stream' : 'application/json', raw)
  if (n === null) return null
  const same = n.body === raw
  return {
    meta: { ...m, shape: n.shape, sourceShape: n.sourceShape, hasUsage: n.hasUsage, size: n.body.length, z: same ? m.z : 0, checked: true },
    payload: same ? e.payload : exact(n.body),
  }
}

/** True when `compressEntry` may shrink this entry enough to be worth a compression. */
export function worthCompressing(e: StoredEntry): boolean {
  return e.meta.z === 0 && e.payload.length >= COMPRESS_MIN_BYTES
}

interface CompressJob {
  readonly entry: StoredEntry
  readonly resolve: (e: StoredEntry | null) => void
}

const queue: CompressJob[] = []
let running = 0

function runNext(): void {
  const job = queue.shift()
  if (job === undefined) return
  running++
  const src = job.entry.payload
  brotliCompress(src, { params: { ...BROTLI_OPTS.params, [zc.BROTLI_PARAM_SIZE_HINT]: src.length } }, (err, out) => {
    running--
    job.resolve(err !== null || out.length >= src.length ? null : { meta: { ...job.entry.meta, z: 1 }, payload: exact(out) })
    runNext()
  })
}

/**
 * The compressed form of an uncompressed entry, computed on libuv's thread pool so the event
 * loop never waits for it (a queue, at most two at a time). Null when it would not be smaller,
 * when the queue is full, or on a codec error: the caller keeps the uncompressed entry.
 */
export function compressEntry(e: StoredEntry): Promise<StoredEntry | null> {
  if (!worthCompressing(e) || queue.length >= COMPRESS_QUEUE_MAX) return Promise.resolve(null)
  return new Promise((resolve) => {
    queue.push({ entry: e, resolve })
    if (running < COMPRESS_CONCURRENCY) runNext()
  })
}

export function loadEntry(e: StoredEntry): CachedResponse {
  const m = e.meta
  const body = m.z === 1 ? brotliDecompressSync(e.payload) : e.payload
  return {
    key: m.key,
    scope: m.scope,
    endpoint: m.endpoint,
    status: 200,
    shape: m.shape,
    sourceShape: m.sourceShape,
    hasUsage: m.hasUsage,
    body,
    size: m.size,
    storedAt: m.storedAt,
    expiresAt: m.expiresAt,
    similarity: null,
  }
}

/** Bytes an entry costs in memory: payload plus a fixed allowance for the objects around it. */
export function storedBytes(e: StoredEntry): number {
  return e.payload.length + e.meta.key.length * 2 + e.meta.scope.length * 2 + 160
}

/** Wire form for Redis: u32 header length, JSON header, payload. */
export function encodeEntry(e: StoredEntry): Buffer {
  const head = Buffer.from(JSON.stringify(e.meta))
  const out = Buffer.allocUnsafe(4 + head.length + e.payload.length)
  out.writeUInt32BE(head.length, 0)
  head.copy(out, 4)
  e.payload.copy(out, 4 + head.length)
  return out
}

/** Null for anything that is not a well-formed entry of this version (a foreign or corrupt value is a miss). */
export function decodeEntry(buf: Buffer): StoredEntry | null {
  if (buf.length < 4) return null
  const n = buf.readUInt32BE(0)
  if (4 + n > buf.length) return null
  let meta: EntryMeta
  try {
    meta = JSON.parse(buf.subarray(4, 4 + n).toString('utf8')) as EntryMeta
  } catch {
    return null
  }
  if (meta === null || typeof meta !== 'object' || meta.v !== 1 || typeof meta.key !== 'string' || typeof meta.scope !== 'string' || meta.checked === false) return null
  return { meta, payload: buf.subarray(4 + n) }
}
