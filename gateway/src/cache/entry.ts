/**
 * A cached response and its stored (compressed) form. The stored form is what the memory store
 * holds and what Redis holds, byte for byte, so instances sharing a Redis read each other's entries.
 */
import { brotliCompressSync, brotliDecompressSync, constants as zc } from 'node:zlib'
import type { CacheEndpoint } from './config.ts'

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
}

/** Below this, compression costs more than it saves. */
const COMPRESS_MIN_BYTES = 256
/** Brotli quality 5: compression happens once off the hot path; decompression is the fastest of node's codecs here. */
const BROTLI_OPTS = { params: { [zc.BROTLI_PARAM_QUALITY]: 5, [zc.BROTLI_PARAM_MODE]: zc.BROTLI_MODE_TEXT } }

/**
 * A buffer that owns exactly its bytes. zlib's sync output (and many other buffers) is a view
 * into a larger allocation (a 16 KiB+ output chunk): kept in a cache, each such view would pin
 * its whole backing store, many times the bytes the cache accounts for.
 */
function exact(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.length) return buf
  const own = Buffer.allocUnsafeSlow(buf.length)
  buf.copy(own)
  return own
}

export function storeEntry(r: CachedResponse): StoredEntry {
  const compress = r.body.length >= COMPRESS_MIN_BYTES
  let payload = r.body
  let z: 0 | 1 = 0
  if (compress) {
    const c = brotliCompressSync(r.body, BROTLI_OPTS)
    if (c.length < r.body.length) {
      payload = c
      z = 1
    }
  }
  payload = exact(payload)
  return {
    meta: {
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
    },
    payload,
  }
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
  if (meta === null || typeof meta !== 'object' || meta.v !== 1 || typeof meta.key !== 'string' || typeof meta.scope !== 'string') return null
  return { meta, payload: buf.subarray(4 + n) }
}
