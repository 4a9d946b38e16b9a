/**
 * The shared tier in Redis/Valkey. Every call degrades to "nothing there" rather than failing:
 * commands are not queued while disconnected, each is bounded by `redis.commandTimeoutMs`, and
 * ioredis reconnects on its own in the background.
 *
 * Layout under `redis.keyPrefix`:
 *   cache:x:<key>      exact entry (encoded StoredEntry), PX ttl
 *   cache:s:<id>       semantic entry hash {part, vec, guard, text, entry, src}, PX ttl
 *   cache:slog         stream of semantic inserts (`id`, `src`) that instances tail to stay in sync
 *   cache:sidx         FT vector index over cache:s:*, when the server has vector search
 */
import type { Redis } from 'ioredis'
import { redisClientClass, requestPathRedisOptions } from '../config/redis-client.ts'
import { Breaker } from '../routing/breaker.ts'
import type { OutlierConfig } from '../routing/config.ts'
import { randomUUID } from 'node:crypto'
import { decodeEntry, encodeEntry, type StoredEntry } from './entry.ts'
import type { CacheMetrics } from './metrics.ts'

export interface RedisSettings {
  url?: string | undefined
  passwordEnv?: string | undefined
  keyPrefix: string
  connectTimeoutMs: number
  commandTimeoutMs: number
}

export interface Logger {
  warn(o: object, msg?: string): void
  info(o: object, msg?: string): void
}

export interface SemanticRecord {
  readonly id: string
  readonly partition: string
  readonly vector: Float32Array
  readonly guard: string
  /** The prompt the entry answers, for the verifier. */
  readonly text: string
  readonly entry: StoredEntry
}

export interface VectorHit {
  readonly record: SemanticRecord
  readonly similarity: number
}

const STREAM_MAXLEN = 100_000
const SCAN_BATCH = 256
/**
 * After 3 failed commands in a row Redis is skipped for 1 s, so a hung server costs one timeout,
 * not one per request; then one command probes it. The routing members' breaker, with a fixed
 * ejection (no doubling) and a probe that gets no verdict freeing the next after the same 1 s.
 */
const BREAKER: OutlierConfig = Object.freeze({ consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 1_000 })

export class RedisTier {
  readonly instanceId = randomUUID()
  readonly #client: Redis
  readonly #tail: Redis
  readonly #prefix: string
  readonly #metrics: CacheMetrics
  readonly #logger: Logger
  #vectorSearch = false
  #indexDim = 0
  #tailing = false
  #closed = false
  #lastErrorLog = 0
  readonly #breaker = new Breaker(BREAKER, Date.now())

  private constructor(settings: RedisSettings, metrics: CacheMetrics, logger: Logger) {
    if (settings.url === undefined) throw new Error('cache.backend is "redis" but redis.url is not set')
    this.#prefix = settings.keyPrefix
    this.#metrics = metrics
    this.#logger = logger
    const opts = requestPathRedisOptions(settings)
    const RedisClient = redisClientClass()
    this.#client = new RedisClient(settings.url, opts)
    // The tail connection blocks in XREAD, so it gets no command timeout and may queue while reconnecting.
    this.#tail = new RedisClient(settings.url, { ...opts, commandTimeout: undefined, enableOfflineQueue: true, maxRetriesPerRequest: null })
    const onError = (err: Error): void => this.#logError('connection', err)
    this.#client.on('error', onError)
    this.#tail.on('error', onError)
  }

  /** Connects and probes for vector search; a Redis that is down at boot is logged, not fatal. */
  static async connect(settings: RedisSettings, metrics: CacheMetrics, logger: Logger): Promise<RedisTier> {
    const tier = new RedisTier(settings, metrics, logger)
    try {
      await Promise.all([tier.#client.connect(), tier.#tail.connect()])
    } catch (err) {
      tier.#logError('connect', err as Error)
    }
    return tier
  }

  get ready(): boolean {
    return this.#client.status === 'ready'
  }

  /**
   * Connected and not skipped by the breaker; used on the request path. After the open period the
   * call that passes is the breaker's one probe: its outcome closes or re-opens it.
   */
  #usable(): boolean {
    if (this.#client.status !== 'ready') return false
    const now = Date.now()
    if (!this.#breaker.allows(now)) return false
    this.#breaker.onStart(now)
    return true
  }

  #succeeded(): void {
    this.#breaker.onSuccess(Date.now())
  }

  get vectorSearch(): boolean {
    return this.#vectorSearch
  }

  key(kind: 'x' | 's', id: string): string {
    return this.#prefix + 'cache:' + kind + ':' + id
  }

  get #logKey(): string {
    return this.#prefix + 'cache:slog'
  }

  get #indexName(): string {
    return this.#prefix + 'cache:sidx'
  }

  async get(key: string): Promise<StoredEntry | null> {
    if (!this.#usable()) return null
    try {
      const buf = await this.#client.getBuffer(this.key('x', key))
      this.#succeeded()
      return buf === null ? null : decodeEntry(buf)
    } catch (err) {
      this.#fail('get', err as Error)
      return null
    }
  }

  set(key: string, entry: StoredEntry, ttlMs: number): void {
    if (!this.#usable()) return
    this.#client.set(this.key('x', key), encodeEntry(entry), 'PX', Math.max(1, Math.round(ttlMs))).then(
      () => this.#succeeded(),
      (err: Error) => this.#fail('set', err),
    )
  }

  putSemantic(r: SemanticRecord, ttlMs: number): void {
    if (!this.#usable()) return
    const k = this.key('s', r.id)
    const px = Math.max(1, Math.round(ttlMs))
    const vec = Buffer.from(r.vector.buffer, r.vector.byteOffset, r.vector.byteLength)
    this.#client
      .multi()
      .hset(k, { part: r.partition, vec, guard: r.guard, text: r.text, entry: encodeEntry(r.entry), src: this.instanceId })
      .pexpire(k, px)
      .xadd(this.#logKey, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'id', r.id, 'src', this.instanceId)
      .exec()
      .catch((err: Error) => this.#fail('semantic-put', err))
    if (this.#vectorSearch && this.#indexDim !== r.vector.length) void this.#ensureIndex(r.vector.length)
  }

  /**
   * Loads every live semantic record (boot rebuild), then tails the insert stream from the point
   * the scan started, so nothing written meanwhile is missed. Records from this instance are skipped.
   */
  async syncSemantic(onRecord: (r: SemanticRecord) => void, maxRecords: number): Promise<number> {
    if (!this.ready) {
      // Down at boot: rebuild once it comes up, without holding up readiness.
      this.#client.once('ready', () => void this.syncSemantic(onRecord, maxRecords))
      return 0
    }
    let loaded = 0
    let since = '0-0'
    try {
      const last = (await this.#tail.xrevrange(this.#logKey, '+', '-', 'COUNT', 1)) as [string, string[]][]
      since = last[0]?.[0] ?? '0-0'
      let cursor = '0'
      do {
        const [next, keys] = await this.#tail.scan(cursor, 'MATCH', this.#prefix + 'cache:s:*', 'COUNT', SCAN_BATCH)
        cursor = next
        if (keys.length === 0) continue
        const pipe = this.#tail.pipeline()
        for (const k of keys) pipe.hgetallBuffer(k)
        const rows = (await pipe.exec()) ?? []
        for (let i = 0; i < rows.length && loaded < maxRecords; i++) {
          const r = parseRecord(keys[i]!.slice(this.key('s', '').length), rows[i]![1] as Record<string, Buffer> | null)
          if (r !== null) {
            onRecord(r)
            loaded++
          }
        }
      } while (cursor !== '0' && loaded < maxRecords)
    } catch (err) {
      this.#fail('semantic-rebuild', err as Error)
    }
    this.#startTail(since, onRecord)
    return loaded
  }

  #startTail(since: string, onRecord: (r: SemanticRecord) => void): void {
    if (this.#tailing) return
    this.#tailing = true
    let lastId = since
    const loop = async (): Promise<void> => {
      while (!this.#closed) {
        try {
          const res = (await this.#tail.xread('COUNT', 256, 'BLOCK', 1_000, 'STREAMS', this.#logKey, lastId)) as [string, [string, string[]][]][] | null
          if (res === null) continue
          const ids: string[] = []
          for (const [, entries] of res) {
            for (const [streamId, fields] of entries) {
              lastId = streamId
              const f = pairs(fields)
              if (f.src !== this.instanceId && f.id !== undefined) ids.push(f.id)
            }
          }
          if (ids.length === 0) continue
          const pipe = this.#tail.pipeline()
          for (const id of ids) pipe.hgetallBuffer(this.key('s', id))
          const rows = (await pipe.exec()) ?? []
          rows.forEach((row, i) => {
            const r = parseRecord(ids[i]!, row[1] as Record<string, Buffer> | null)
            if (r !== null) onRecord(r)
          })
        } catch (err) {
          if (this.#closed) return
          this.#fail('semantic-tail', err as Error)
          await new Promise((r) => setTimeout(r, 500).unref())
        }
      }
    }
    void loop()
  }

  /**
   * Whether the server has vector search (RediSearch 2.4+ or Valkey Search): FT.* must exist and
   * accept a VECTOR field. The index itself is created on the first insert, when the dimension is known.
   */
  async detectVectorSearch(): Promise<boolean> {
    if (!this.ready) return false
    try {
      const info = (await this.#client.call('COMMAND', 'INFO', 'FT.SEARCH')) as unknown[]
      if (!Array.isArray(info) || info[0] === null || info[0] === undefined) return false
      const probe = this.#prefix + 'cache:probe:' + this.instanceId
      await this.#client.call('FT.CREATE', probe, 'ON', 'HASH', 'PREFIX', '1', probe + ':', 'SCHEMA', 'v', 'VECTOR', 'HNSW', '6', 'TYPE', 'FLOAT32', 'DIM', '4', 'DISTANCE_METRIC', 'COSINE')
      await this.#client.call('FT.DROPINDEX', probe)
      this.#vectorSearch = true
    } catch {
      this.#vectorSearch = false
    }
    return this.#vectorSearch
  }

  async #ensureIndex(dim: number): Promise<void> {
    this.#indexDim = dim
    try {
      await this.#client.call(
        'FT.CREATE', this.#indexName, 'ON', 'HASH', 'PREFIX', '1', this.key('s', ''),
        'SCHEMA', 'part', 'TAG', 'vec', 'VECTOR', 'HNSW', '6', 'TYPE', 'FLOAT32', 'DIM', String(dim), 'DISTANCE_METRIC', 'COSINE',
      )
    } catch (err) {
      if (!/already exists/i.test((err as Error).message)) this.#fail('semantic-index', err as Error)
    }
  }

  /** K nearest records of one partition by the server's vector index; empty on any failure. */
  async vectorQuery(partition: string, vector: Float32Array, k: number): Promise<VectorHit[]> {
    if (!this.#vectorSearch || !this.#usable()) return []
    try {
      // Another instance may have created the index; creating it again is a no-op.
      if (this.#indexDim !== vector.length) await this.#ensureIndex(vector.length)
      const blob = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)
      const tag = partition.replace(/[^A-Za-z0-9_]/g, (c) => '\\' + c)
      const res = (await this.#client.callBuffer(
        'FT.SEARCH', this.#indexName, `@part:{${tag}}=>[KNN ${k} @vec $B AS dist]`,
        'PARAMS', '2', 'B', blob, 'RETURN', '6', 'dist', 'part', 'vec', 'guard', 'text', 'entry', 'SORTBY', 'dist', 'LIMIT', '0', String(k), 'DIALECT', '2',
      )) as unknown[]
      const hits: VectorHit[] = []
      for (let i = 1; i + 1 < res.length; i += 2) {
        const id = (res[i] as Buffer).toString().slice(this.key('s', '').length)
        const arr = res[i + 1] as Buffer[]
        const fields: Record<string, Buffer> = {}
        for (let j = 0; j + 1 < arr.length; j += 2) fields[arr[j]!.toString()] = arr[j + 1]!
        const r = parseRecord(id, fields)
        // COSINE distance is 1 - similarity.
        if (r !== null && fields.dist !== undefined) hits.push({ record: r, similarity: 1 - Number(fields.dist.toString()) })
      }
      this.#succeeded()
      return hits
    } catch (err) {
      this.#fail('semantic-search', err as Error)
      return []
    }
  }

  /**
   * An operator's purge of the shared tier: the exact entry under `key`, or every exact and
   * semantic entry whose metadata matches (a scan of this deployment's keys, in batches).
   * Returns how many keys were deleted; throws when Redis cannot be reached.
   */
  async purge(key: string | null, match: (meta: StoredEntry['meta']) => boolean): Promise<number> {
    if (key !== null) return await this.#client.del(this.key('x', key))
    let deleted = 0
    for (const kind of ['x', 's'] as const) {
      let cursor = '0'
      do {
        const [next, keys] = await this.#client.scan(cursor, 'MATCH', this.key(kind, '*'), 'COUNT', SCAN_BATCH)
        cursor = next
        if (keys.length === 0) continue
        const pipe = this.#client.pipeline()
        for (const k of keys) {
          if (kind === 'x') pipe.getBuffer(k)
          else pipe.hgetBuffer(k, 'entry')
        }
        const rows = (await pipe.exec()) ?? []
        const doomed: string[] = []
        rows.forEach(([err, value], i) => {
          // A command that failed (timed out, connection lost) leaves no value: the purge cannot
          // tell whether that entry matches, so it fails as a whole instead of deciding blind.
          if (err) throw err
          const buf = value as Buffer | null
          const entry = buf === null ? null : decodeEntry(buf)
          if (entry !== null && match(entry.meta)) doomed.push(keys[i]!)
        })
        if (doomed.length > 0) deleted += await this.#client.del(...doomed)
      } while (cursor !== '0')
    }
    return deleted
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#client.disconnect()
    this.#tail.disconnect()
  }

  #fail(op: string, err: Error): void {
    this.#metrics.redisErrors.inc({ op })
    this.#breaker.onFailure(Date.now())
    this.#logError(op, err)
  }

  #logError(op: string, err: Error): void {
    // A dead Redis fails every request: one line every few seconds tells the story without flooding.
    const now = Date.now()
    if (now - this.#lastErrorLog < 5_000) return
    this.#lastErrorLog = now
    this.#logger.warn({ op, err: err.message }, 'cache: redis unavailable, serving without the shared tier')
  }
}

function pairs(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!
  return out
}

function parseRecord(id: string, f: Record<string, Buffer> | null): SemanticRecord | null {
  // An entry without its prompt (written before verification existed) cannot be verified: skipped.
  if (f === null || f.part === undefined || f.vec === undefined || f.entry === undefined || f.guard === undefined || f.text === undefined) return null
  const entry = decodeEntry(f.entry)
  if (entry === null || entry.meta.expiresAt <= Date.now()) return null
  if (f.vec.length % 4 !== 0 || f.vec.length === 0) return null
  // Copy: the Buffer may be a view into a pooled slab with an unaligned offset.
  const vector = new Float32Array(f.vec.length / 4)
  new Uint8Array(vector.buffer).set(f.vec)
  return { id, partition: f.part.toString(), vector, guard: f.guard.toString(), text: f.text.toString(), entry }
}
