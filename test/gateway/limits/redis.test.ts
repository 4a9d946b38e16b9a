/** Limits shared through a real redis-server: exact across replicas, durable, and local when Redis is gone. */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../../../gateway/src/errors.ts'
import { LimitsSchema, type LimitsConfigInput } from '../../../gateway/src/limits/config.ts'
import { Limiter, type Admission, type LimitSubject } from '../../../gateway/src/limits/limiter.ts'
import { RedisLimitStore } from '../../../gateway/src/limits/redis-store.ts'
import { RedisServer } from '../cache/helpers.ts'
import { eventually } from '../../helpers/eventually.ts'
import { Redis } from 'ioredis'

let redis: RedisServer
let prefixSeq = 0
const subject: LimitSubject = { tenant: 'acme', keyName: 'k', model: 'llama' }
const small = { inputTokens: 10, outputTokens: 10 }

before(async () => {
  redis = await RedisServer.start()
})
after(async () => {
  await redis.stop()
})

interface Replica {
  limiter: Limiter
  store: RedisLimitStore
  fallbacks: string[]
}

async function replicas(n: number, limits: LimitsConfigInput, keyPrefix = `t${++prefixSeq}:`): Promise<Replica[]> {
  const out: Replica[] = []
  for (let i = 0; i < n; i++) {
    const fallbacks: string[] = []
    const store = new RedisLimitStore({ url: redis.url, keyPrefix, connectTimeoutMs: 500, commandTimeoutMs: 2000, heartbeatMs: 100 }, { fallback: (op) => fallbacks.push(op) })
    const limiter = new Limiter(LimitsSchema.parse({ backend: 'redis', ...limits }), store)
    store.start()
    limiter.start()
    out.push({ limiter, store, fallbacks })
  }
  // Each replica has registered its heartbeat and sees the others.
  for (;;) {
    if (out.every((r) => r.store.usable && r.store.replicas() === n)) return out
    await new Promise((r) => setImmediate(r))
  }
}

async function closeAll(rs: Replica[]): Promise<void> {
  for (const r of rs) {
    r.limiter.close()
    await r.store.close()
  }
}

async function attempt(r: Replica, s = subject, cost = small): Promise<Admission | GatewayError> {
  try {
    return await r.limiter.admit(s, cost)
  } catch (err) {
    if (err instanceof GatewayError) return err
    throw err
  }
}

test('three replicas sharing a 600-per-minute limit admit 594 to 600 of 1,200 concurrent requests, never more', async () => {
  const rs = await replicas(3, { rules: [{ requestsPerMinute: 600 }] })
  try {
    const results = await Promise.all(Array.from({ length: 1200 }, (_, i) => attempt(rs[i % 3]!)))
    const admitted = results.filter((r) => !(r instanceof GatewayError)).length
    const refused = results.filter((r) => r instanceof GatewayError)
    assert.ok(admitted <= 600, `${admitted} admitted`)
    assert.ok(admitted >= 594, `${admitted} admitted`)
    assert.ok(refused.every((e) => e.status === 429 && e.code === 'GW_ERR_RATE_LIMITED'))
    // Far from the limit most admissions cost no round trip: they came from local leases.
    assert.deepEqual(rs.flatMap((r) => r.fallbacks), [])
  } finally {
    await closeAll(rs)
  }
})

test('far from the limit, admissions are decided locally (synchronously) from leases', async () => {
  const [r] = await replicas(1, { rules: [{ requestsPerMinute: 100_000 }] })
  try {
    await attempt(r!)
    let sync = 0
    for (let i = 0; i < 1000; i++) {
      const a = r!.limiter.admit(subject, small)
      if (!(a instanceof Promise)) sync++
      else await a
    }
    assert.ok(sync >= 990, `${sync} of 1000 decided without a round trip`)
  } finally {
    await closeAll([r!])
  }
})

test('token reservations reconcile across replicas', async () => {
  const rs = await replicas(2, { rules: [{ tokensPerMinute: 1000 }] })
  try {
    const a = await rs[0]!.limiter.admit(subject, { inputTokens: 100, outputTokens: 800 })
    assert.ok((await attempt(rs[1]!, subject, { inputTokens: 100, outputTokens: 100 })) instanceof GatewayError)
    a.settle({ inputTokens: 50, outputTokens: 50 }, true)
    // The give-back reaches Redis asynchronously; the other replica then has room.
    await eventually(async () => !((await attempt(rs[1]!, subject, { inputTokens: 100, outputTokens: 700 })) instanceof GatewayError), { what: 'the give-back to reach the other replica', intervalMs: 5 })
  } finally {
    await closeAll(rs)
  }
})

test('a budget survives a gateway restart', async () => {
  const prefix = `budget${++prefixSeq}:`
  const limits = { rules: [{ name: 'daily', tokensPerDay: 1000 }] }
  const [first] = await replicas(1, limits, prefix)
  ;(await first!.limiter.admit(subject, { inputTokens: 500, outputTokens: 0 })).settle({ inputTokens: 500, outputTokens: 400 }, true)
  await closeAll([first!])
  const [second] = await replicas(1, limits, prefix)
  try {
    const r = await attempt(second!, subject, { inputTokens: 100, outputTokens: 100 })
    assert.ok(r instanceof GatewayError && r.code === 'GW_ERR_BUDGET_EXCEEDED', 'the restarted replica sees the 900 tokens already spent')
  } finally {
    await closeAll([second!])
  }
})

test('concurrency is shared, and a dead replica\'s slots are not held forever', async () => {
  const rs = await replicas(2, { rules: [{ concurrent: 4 }] })
  try {
    const held = [await rs[0]!.limiter.admit(subject, small), await rs[0]!.limiter.admit(subject, small), await rs[1]!.limiter.admit(subject, small), await rs[1]!.limiter.admit(subject, small)]
    assert.ok((await attempt(rs[0]!)) instanceof GatewayError)
    held[2]!.settle(null, true)
    await eventually(async () => !((await attempt(rs[0]!)) instanceof GatewayError), { what: 'the settled slot to be free', intervalMs: 5 })
    assert.ok((await attempt(rs[0]!)) instanceof GatewayError, 'four in flight again')
    // Replica 1 dies holding a slot: once its heartbeat stops, the slot is free again.
    await closeAll([rs[1]!])
    await eventually(async () => !((await attempt(rs[0]!)) instanceof GatewayError), { what: 'the dead replica\'s slot to be freed', timeoutMs: 30_000, intervalMs: 10 })
  } finally {
    await closeAll(rs)
  }
})

test('Redis killed mid-run: every replica keeps deciding locally within its share, and never errors', async () => {
  const rs = await replicas(3, { rules: [{ requestsPerMinute: 300 }] })
  try {
    for (let i = 0; i < 30; i++) assert.ok(!((await attempt(rs[i % 3]!)) instanceof GatewayError))
    await redis.stop()
    const results = await Promise.all(Array.from({ length: 600 }, (_, i) => attempt(rs[i % 3]!)))
    // Each replica enforces its share, 300 / 3 = 100, locally, plus what it still held from Redis:
    // at most a lease and a half (a lease is 5% of 300; a refill starts when half of one is left);
    // leases given back while Redis is gone are dropped (the safe side), so a few units go unused.
    for (let r = 0; r < 3; r++) {
      const admitted = results.filter((x, i) => i % 3 === r && !(x instanceof GatewayError)).length
      assert.ok(admitted >= 90 && admitted <= 123, `replica ${r}: ${admitted} admitted with Redis down`)
    }
    assert.ok(results.every((r) => !(r instanceof GatewayError) || r.status === 429))
    assert.ok(rs.some((r) => r.fallbacks.length > 0), 'fallbacks are counted')
  } finally {
    await redis.restart()
    await closeAll(rs)
  }
})

test('a grant or an acquisition whose answer is lost (Redis paused past the command timeout) is taken back: no lease or slot leaks', async () => {
  const probe = new Redis(redis.url)
  const sumOf = async (pattern: string): Promise<number> => {
    let total = 0
    for (const key of await probe.keys(pattern)) for (const v of Object.values(await probe.hgetall(key))) total += Number(v)
    return total
  }
  try {
    for (const [rule, kind] of [[{ tokensPerDay: 1_000_000 }, 'w'], [{ concurrent: 100 }, 'g']] as const) {
      const prefix = `lost${++prefixSeq}:`
      const fallbacks: string[] = []
      const store = new RedisLimitStore({ url: redis.url, keyPrefix: prefix, connectTimeoutMs: 500, commandTimeoutMs: 100, heartbeatMs: 50 }, { fallback: (op) => fallbacks.push(op) })
      const limiter = new Limiter(LimitsSchema.parse({ backend: 'redis', rules: [rule] }), store)
      store.start()
      limiter.start()
      try {
        while (!store.usable) await new Promise((r) => setImmediate(r))
        redis.pause()
        // Sent, then timed out: decided locally; Redis runs the call once it is resumed.
        const admission = await limiter.admit(subject, small)
        assert.ok(!(admission instanceof GatewayError))
        assert.ok(fallbacks.includes(kind === 'w' ? 'grant' : 'acquire'), fallbacks.join())
        assert.equal(store.pendingUndo, 1)
        redis.resume()
        await eventually(() => store.pendingUndo === 0, { what: 'the lost call to be taken back' })
        assert.equal(await sumOf(`${prefix}limits:${kind}:*`), 0, 'what the lost call gave in Redis was taken back')
        admission.settle(null, true)
      } finally {
        redis.resume()
        limiter.close()
        await store.close()
      }
    }
  } finally {
    probe.disconnect()
  }
})
