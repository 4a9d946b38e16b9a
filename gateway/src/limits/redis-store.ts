/**
 * Limit counters shared by every replica through Redis/Valkey. Each operation is one server-side
 * script, so a grant is atomic across replicas. Replicas spend grants locally as leases (see
 * counter.ts), so a request far from its limit makes no round trip at all.
 *
 * When Redis is slow or down, a call fails within `redis.commandTimeoutMs` and this replica
 * decides locally for a while (each replica enforcing its share, limit / live replicas, with its
 * own in-memory counters), retries Redis after a back-off, and counts every fallback.
 */
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { redisClientClass, requestPathRedisOptions } from '../config/redis-client.ts'
import { MemoryLimitStore, retryAtOf, type GaugeGrant, type Grant, type GrantRequest, type LimitStore } from './store.ts'
import type { Window } from './windows.ts'

export interface RedisLimitSettings {
  url: string
  passwordEnv?: string | undefined
  keyPrefix: string
  connectTimeoutMs: number
  commandTimeoutMs: number
  /** How often this replica announces itself (ms); it counts as gone after five missed beats. */
  heartbeatMs?: number
}

export interface StoreEvents {
  /** A decision was made locally because Redis failed (`op`: grant | acquire | adjust | release | heartbeat). */
  fallback(op: string, err: Error): void
}

/*
 * Grants and acquisitions carry a marker key of their own (KEYS[last]): the script records what it
 * gave there, and refuses to run once the marker exists. A call whose answer was lost (a timeout:
 * it may or may not have run) is followed by an undo script with the same marker, sent later on
 * the same connection: it takes back what the marker says was given, and leaves a tombstone so a
 * call still on its way does nothing. A lost answer then costs nothing, instead of leaking a
 * lease (up to leaseFraction of a daily budget per timeout) or concurrency slots for good.
 */

/** KEYS: hash of bucket -> count, marker. ARGV: bucket, buckets, limit, need, want, ttlMs, markerTtlMs. Returns {granted, used, freeBucket|-1}. */
const GRANT = `
if not redis.call('SET', KEYS[2], '-', 'NX', 'PX', ARGV[7]) then return {0, 0, -1} end
local now = tonumber(ARGV[1]); local n = tonumber(ARGV[2]); local limit = tonumber(ARGV[3])
local need = tonumber(ARGV[4]); local want = tonumber(ARGV[5])
local fields = redis.call('HGETALL', KEYS[1])
local used = 0
local live = {}
for i = 1, #fields, 2 do
  local b = tonumber(fields[i]); local v = tonumber(fields[i + 1])
  if b <= now - n then redis.call('HDEL', KEYS[1], fields[i])
  else used = used + v; live[#live + 1] = {b, v} end
end
local avail = limit - used
local granted = 0
if avail >= need then granted = math.min(want, avail) end
local free = -1
if granted > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], granted)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('SET', KEYS[2], ARGV[1] .. ':' .. granted, 'PX', ARGV[7])
else
  table.sort(live, function(a, b) return a[1] < b[1] end)
  local freed = avail
  for _, bv in ipairs(live) do
    freed = freed + bv[2]
    if freed >= need then free = bv[1]; break end
  end
end
return {granted, used + granted, free}
`

/** KEYS: hash of bucket -> count, the grant's marker. ARGV: markerTtlMs. Takes back what the grant gave, if it ran. */
const UNGRANT = `
local v = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], '-', 'PX', ARGV[1])
if not v or v == '-' then return 0 end
local sep = string.find(v, ':')
local bucket = string.sub(v, 1, sep - 1)
local n = tonumber(string.sub(v, sep + 1))
if redis.call('HEXISTS', KEYS[1], bucket) == 1 then
  if redis.call('HINCRBY', KEYS[1], bucket, -n) < 0 then redis.call('HSET', KEYS[1], bucket, 0) end
end
return n
`

/** KEYS: hash. ARGV: bucket, oldest live bucket, delta. */
const ADJUST = `
if tonumber(ARGV[1]) < tonumber(ARGV[2]) or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[3])
if v < 0 then redis.call('HSET', KEYS[1], ARGV[1], 0) end
return v
`

/**
 * KEYS: gauge hash (replica -> held), replicas zset, marker. ARGV: replica, limit, need, want, now,
 * deadBefore, markerTtlMs. Slots of replicas whose heartbeat stopped are dropped first.
 */
const ACQUIRE = `
if not redis.call('SET', KEYS[3], '-', 'NX', 'PX', ARGV[7]) then return {0, 0} end
local fields = redis.call('HGETALL', KEYS[1])
local held = 0
for i = 1, #fields, 2 do
  local seen = redis.call('ZSCORE', KEYS[2], fields[i])
  if fields[i] ~= ARGV[1] and (not seen or tonumber(seen) < tonumber(ARGV[6])) then redis.call('HDEL', KEYS[1], fields[i])
  else held = held + tonumber(fields[i + 1]) end
end
local avail = tonumber(ARGV[2]) - held
local granted = 0
if avail >= tonumber(ARGV[3]) then granted = math.min(tonumber(ARGV[4]), avail) end
if granted > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], granted); redis.call('PEXPIRE', KEYS[1], 86400000)
  redis.call('SET', KEYS[3], granted, 'PX', ARGV[7])
end
return {granted, held + granted}
`

/**
 * KEYS: gauge hash, marker. ARGV: replica, n, markerTtlMs. `n` = 0: take back what the
 * acquisition with this marker gave, if it ran; otherwise give back `n` slots, once per marker
 * (a release whose answer was lost is sent again with its marker).
 */
const RELEASE = `
local n = tonumber(ARGV[2])
if n == 0 then
  local v = redis.call('GET', KEYS[2])
  redis.call('SET', KEYS[2], '-', 'PX', ARGV[3])
  if not v or v == '-' then return 0 end
  n = tonumber(v)
elseif not redis.call('SET', KEYS[2], '-', 'NX', 'PX', ARGV[3]) then return 0 end
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], -n)
if v <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v
`

/** KEYS: replicas zset. ARGV: replica, now, deadBefore. Returns the live count. */
const HEARTBEAT = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
`

const HEARTBEAT_MS = 2_000
/** How long a marker lives: far longer than a command can be late (a marker per grant, so not much longer). */
const MARKER_TTL_MS = 120_000
/** Undo calls kept while Redis is unusable; past this the oldest are dropped (and counted). */
const MAX_UNDO = 10_000
const UNUSABLE = new Error('Redis is not connected, or backing off after a failure')
const BACKOFF_MIN_MS = 500
const BACKOFF_MAX_MS = 10_000

type Scripted = Redis & {
  vxGrant(key: string, marker: string, ...args: (string | number)[]): Promise<[number, number, number]>
  vxUngrant(key: string, marker: string, ttlMs: number): Promise<number>
  vxAdjust(key: string, ...args: (string | number)[]): Promise<number>
  vxAcquire(key: string, replicas: string, marker: string, ...args: (string | number)[]): Promise<[number, number]>
  vxRelease(key: string, marker: string, ...args: (string | number)[]): Promise<number>
  vxHeartbeat(key: string, ...args: (string | number)[]): Promise<number>
}

export class RedisLimitStore implements LimitStore {
  readonly shared = true
  readonly replica = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  readonly #client: Scripted
  readonly #prefix: string
  readonly #events: StoreEvents
  /** Decides while Redis is unusable, each replica within its share of every limit. */
  readonly #local = new MemoryLimitStore()
  #replicas = 1
  #downUntil = 0
  #backoffMs = BACKOFF_MIN_MS
  #heartbeat: NodeJS.Timeout | null = null
  /** Calls to repeat once Redis answers again: undos of grants and acquisitions whose answer was lost, releases. */
  #undo: (() => Promise<unknown>)[] = []
  #undoing = false
  #markerSeq = 0
  readonly #heartbeatMs: number
  readonly #deadAfterMs: number

  constructor(settings: RedisLimitSettings, events: StoreEvents) {
    const opts = requestPathRedisOptions(settings)
    const RedisClient = redisClientClass()
    const client = new RedisClient(settings.url, opts)
    client.on('error', () => {}) // failures surface per command, as fallbacks
    client.defineCommand('vxGrant', { numberOfKeys: 2, lua: GRANT })
    client.defineCommand('vxUngrant', { numberOfKeys: 2, lua: UNGRANT })
    client.defineCommand('vxAdjust', { numberOfKeys: 1, lua: ADJUST })
    client.defineCommand('vxAcquire', { numberOfKeys: 3, lua: ACQUIRE })
    client.defineCommand('vxRelease', { numberOfKeys: 2, lua: RELEASE })
    client.defineCommand('vxHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT })
    this.#client = client as Scripted
    this.#prefix = settings.keyPrefix + 'limits:'
    this.#events = events
    this.#heartbeatMs = settings.heartbeatMs ?? HEARTBEAT_MS
    this.#deadAfterMs = 5 * this.#heartbeatMs
  }

  start(): void {
    if (this.#heartbeat !== null) return
    this.#local.start()
    const beat = (): void => {
      const now = Date.now()
      this.#client.vxHeartbeat(this.#prefix + 'replicas', this.replica, now, now - this.#deadAfterMs).then(
        (n) => {
          this.#replicas = Math.max(1, n)
          void this.#drainUndo()
        },
        (err: Error) => {
          if (this.#client.status === 'ready') this.#failed('heartbeat', err)
        },
      )
    }
    // The first beat waits for the connection; a Redis down at boot is retried by the interval.
    this.#client.connect().then(beat, () => {})
    this.#heartbeat = setInterval(beat, this.#heartbeatMs)
    this.#heartbeat.unref()
  }

  replicas(): number {
    return this.#replicas
  }

  /** The connection, shared with the usage ledger. */
  get client(): Redis {
    return this.#client
  }

  /** Redis is connected and not backing off after a failure. */
  get usable(): boolean {
    return this.#client.status === 'ready' && Date.now() >= this.#downUntil
  }

  grant(r: GrantRequest): Grant | Promise<Grant> {
    if (!this.usable) {
      this.#events.fallback('grant', UNUSABLE)
      return this.#local.grant(this.#share(r))
    }
    const bucket = r.window.bucket(r.now)
    const key = this.#prefix + 'w:' + r.key
    const marker = this.#marker()
    return this.#client.vxGrant(key, marker, bucket, r.window.buckets, r.limit, r.need, r.want, r.window.ttlMs, MARKER_TTL_MS).then(
      ([granted, used, free]) => {
        this.#succeeded()
        return { granted, used, retryAt: granted > 0 ? 0 : retryAtOf(r.window, free < 0 ? null : free) }
      },
      (err: Error) => {
        this.#failed('grant', err)
        // It may have run: whatever it gave goes back once Redis answers.
        this.#later(() => this.#client.vxUngrant(key, marker, MARKER_TTL_MS))
        return this.#local.grant(this.#share(r))
      },
    )
  }

  adjust(key: string, window: Window, bucket: number, delta: number, now: number): void {
    // Units given back while Redis is unusable may have come from Redis: dropping them errs on the
    // safe side (the local share stays counted). Usage beyond a reservation is counted locally.
    if (!this.usable) return delta > 0 ? this.#local.adjust(key, window, bucket, delta, now) : undefined
    this.#client.vxAdjust(this.#prefix + 'w:' + key, bucket, window.bucket(now) - window.buckets + 1, Math.round(delta)).catch((err: Error) => this.#failed('adjust', err))
  }

  acquire(key: string, limit: number, need: number, want: number): GaugeGrant | Promise<GaugeGrant> {
    if (!this.usable) {
      this.#events.fallback('acquire', UNUSABLE)
      return this.#local.acquire(key, this.#shareOf(limit), need, want)
    }
    const now = Date.now()
    const gauge = this.#prefix + 'g:' + key
    const marker = this.#marker()
    return this.#client.vxAcquire(gauge, this.#prefix + 'replicas', marker, this.replica, limit, need, want, now, now - this.#deadAfterMs, MARKER_TTL_MS).then(
      ([granted, held]) => {
        this.#succeeded()
        return { granted, held }
      },
      (err: Error) => {
        this.#failed('acquire', err)
        this.#later(() => this.#client.vxRelease(gauge, marker, this.replica, 0, MARKER_TTL_MS))
        return this.#local.acquire(key, this.#shareOf(limit), need, want)
      },
    )
  }

  release(key: string, n: number): void {
    // Slots taken from the local fallback go back there; the rest to Redis (or lapse with the heartbeat).
    if (!this.usable) return this.#local.release(key, n)
    const gauge = this.#prefix + 'g:' + key
    const marker = this.#marker()
    const send = () => this.#client.vxRelease(gauge, marker, this.replica, n, MARKER_TTL_MS)
    send().catch((err: Error) => {
      this.#failed('release', err)
      // Sent again with the same marker: applied once, whether or not the first one ran.
      this.#later(send)
    })
  }

  /** Undo and release calls waiting for Redis to answer again. */
  get pendingUndo(): number {
    return this.#undo.length
  }

  #marker(): string {
    return `${this.#prefix}m:${this.replica}:${(++this.#markerSeq).toString(36)}`
  }

  #later(call: () => Promise<unknown>): void {
    if (this.#undo.length >= MAX_UNDO) {
      this.#undo.shift()
      this.#events.fallback('undo-dropped', new Error(`more than ${MAX_UNDO} calls waiting for Redis`))
    }
    this.#undo.push(call)
  }

  /** Sends the waiting undo calls in order (after a successful heartbeat); stops at the first failure. */
  async #drainUndo(): Promise<void> {
    if (this.#undoing || this.#undo.length === 0) return
    this.#undoing = true
    try {
      while (this.#undo.length > 0 && this.#client.status === 'ready') {
        await this.#undo[0]!()
        this.#undo.shift()
      }
    } catch {
      // Kept for the next heartbeat.
    } finally {
      this.#undoing = false
    }
  }

  async close(): Promise<void> {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    this.#heartbeat = null
    await this.#local.close()
    this.#client.disconnect()
  }

  #share(r: GrantRequest): GrantRequest {
    return { ...r, limit: this.#shareOf(r.limit) }
  }

  #shareOf(limit: number): number {
    return Math.max(1, Math.floor(limit / this.#replicas))
  }

  #succeeded(): void {
    this.#backoffMs = BACKOFF_MIN_MS
  }

  #failed(op: string, err: Error): void {
    this.#downUntil = Date.now() + this.#backoffMs
    this.#backoffMs = Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS)
    this.#events.fallback(op, err)
  }
}
