import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { ResponseCache } from '../../../gateway/src/cache/index.ts'
import type { Registry } from 'prom-client'
import { chatJson, chatRequest, freePort, makeCache, record, RedisServer } from './helpers.ts'
import { eventually } from '../../helpers/eventually.ts'

let redis: RedisServer
let a: ResponseCache
let b: ResponseCache
let registryB: Registry

before(async () => {
  redis = await RedisServer.start()
  ;({ cache: a } = await makeCache({ backend: 'redis' }, redis.url, 50))
  ;({ cache: b, registry: registryB } = await makeCache({ backend: 'redis' }, redis.url, 50))
})
after(async () => {
  await a?.close()
  await b?.close()
  await redis?.stop()
})

let n = 0
const req = () => chatRequest({ body: { model: 'm', temperature: 0, messages: [{ role: 'user', content: `shared question ${++n}` }] } })

describe('redis backend', () => {
  test('two instances sharing one Redis see each other\'s entries, tenant-scoped', async () => {
    const r = req()
    assert.equal(await b.lookup(b.plan(r)), null)
    await record(a, a.plan(r), 200, 'application/json', [chatJson('shared answer')])
    await eventually(async () => (await b.lookup(b.plan(r))) !== null)
    const hit = await b.lookup(b.plan(r))
    assert.equal(JSON.parse(hit!.body.toString()).choices[0].message.content, 'shared answer')
    assert.equal(await b.lookup(b.plan({ ...r, tenant: 'other-tenant' })), null)
    // The Redis hit was copied into b's memory tier: now synchronous.
    assert.ok(!(b.lookup(b.plan(r)) instanceof Promise))
  })

  test('a paused Redis degrades to a miss within the command timeout; the breaker probes it again once it answers', async () => {
    const r = req()
    // An entry b can only find in Redis: b reaching Redis again after the pause is seen as a hit.
    const onlyInRedis = req()
    await record(a, a.plan(onlyInRedis), 200, 'application/json', [chatJson('only in redis')])
    // a's writes go out in order on one connection: once b sees this one, the first is stored too.
    const marker = req()
    await record(a, a.plan(marker), 200, 'application/json', [chatJson('marker')])
    await eventually(async () => (await b.lookup(b.plan(marker))) !== null)
    redis.pause()
    try {
      // The paused server never answers: the lookup returning at all, as a miss counted in the
      // errors below, is the command timeout at work (no wall-clock bound: a loaded machine is slow).
      assert.equal(await b.lookup(b.plan(r)), null)
      // After a few timeouts the breaker skips Redis: a hung server costs one timeout, not one per
      // request. Seen in the errors counter: it grew with each timeout, then stops growing.
      const errors = async () => (await registryB.getSingleMetric('velox_cache_redis_errors_total')!.get()).values.reduce((n, v) => n + v.value, 0)
      assert.ok((await errors()) >= 1, 'the first lookup timed out')
      for (let i = 0; i < 2; i++) assert.equal(await b.lookup(b.plan(req())), null)
      const opened = await errors()
      for (let i = 0; i < 5; i++) assert.equal(await b.lookup(b.plan(req())), null)
      assert.equal(await errors(), opened, 'lookups still went to the hung Redis')
      // Storing while Redis hangs must not throw either; memory still serves this instance.
      await record(b, b.plan(r), 200, 'application/json', [chatJson('local only')])
      assert.ok(b.lookup(b.plan(r)))
    } finally {
      redis.resume()
    }
    // Open for 1 s, then one lookup probes; it succeeds, the breaker closes and b reads Redis again.
    const hit = await eventually(async () => await b.lookup(b.plan(onlyInRedis)), { what: 'b reading Redis after the pause' })
    assert.equal(JSON.parse(hit.body.toString()).choices[0].message.content, 'only in redis')
  })

  test('Redis killed mid-run: requests keep succeeding; it reconnects when Redis returns', async () => {
    const before = req()
    await record(a, a.plan(before), 200, 'application/json', [chatJson('before the crash')])
    await redis.stop()
    for (let i = 0; i < 20; i++) {
      // A lookup that waited for Redis would wait for good (it is down for the whole loop): the
      // test would time out. The client queues nothing while disconnected, so each one misses.
      const r = req()
      assert.equal(await b.lookup(b.plan(r)), null)
      await record(a, a.plan(r), 200, 'application/json', [chatJson('during outage ' + i)])
      assert.ok(a.lookup(a.plan(r)), 'memory tier keeps serving')
    }
    // (No assertion on velox_cache_redis_errors_total here: once the client sees the connection
    // gone, commands are skipped, not failed, so whether any is counted depends on timing.)
    await redis.restart()
    const after = req()
    await eventually(async () => {
      await record(a, a.plan(after), 200, 'application/json', [chatJson('after recovery')])
      return (await b.lookup(b.plan(after))) !== null
    }, { timeoutMs: 8_000 })
  })

  test('a Redis that is down at boot is not fatal, and is used once it comes up', async () => {
    const port = await freePort()
    // Nothing listens on the port yet: a cache that waited for its connection would never be made.
    const { cache: late } = await makeCache({ backend: 'redis' }, `redis://127.0.0.1:${port}`, 50)
    let lateRedis: RedisServer | null = null
    try {
      const r = req()
      assert.equal(await late.lookup(late.plan(r)), null)
      lateRedis = await RedisServer.start(port)
      const { cache: writer } = await makeCache({ backend: 'redis' }, lateRedis.url, 50)
      try {
        await record(writer, writer.plan(r), 200, 'application/json', [chatJson('written after boot')])
        await eventually(async () => (await late.lookup(late.plan(r))) !== null, { timeoutMs: 8_000 })
      } finally {
        await writer.close()
      }
    } finally {
      await late.close()
      await lateRedis?.stop()
    }
  })
})
