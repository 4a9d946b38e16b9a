/** Cache purge across tiers, against a real redis-server: a purged tenant is gone for every instance sharing it. */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { chatJson, chatRequest, makeCache, record, RedisServer } from '../cache/helpers.ts'
import { eventually } from '../../helpers/eventually.ts'

let redis: RedisServer
before(async () => {
  redis = await RedisServer.start()
})
after(async () => {
  await redis.stop()
})

test('purge by tenant clears memory and the shared Redis tier; purge by key only that entry', async () => {
  // A purge is an operator action, not the request path: its Redis commands get more than the
  // request path's 50 ms here, so a busy machine does not time out the scan's batch.
  const { cache } = await makeCache({ backend: 'redis' }, redis.url, 2_000)
  const { cache: peer } = await makeCache({ backend: 'redis' }, redis.url)
  try {
    const plans = {
      acme: cache.plan(chatRequest({ tenant: 'acme' })),
      acmeOther: cache.plan(chatRequest({ tenant: 'acme', body: { model: 'llama', temperature: 0, messages: [{ role: 'user', content: 'another question' }] } })),
      globex: cache.plan(chatRequest({ tenant: 'globex' })),
    }
    for (const p of Object.values(plans)) assert.ok(await record(cache, p, 200, 'application/json', [chatJson('Paris.')]))
    // Redis writes are fire-and-forget: wait until the peer can read all three.
    await eventually(async () => (await Promise.all(Object.values(plans).map((p) => peer.lookup(p)))).every((s) => s !== null), { what: 'the entries in redis', timeoutMs: 2_000 })
    const purged = await cache.purge({ tenant: 'acme' })
    assert.deepEqual(purged, { memory: 2, semantic: 0, redis: 2 })
    assert.equal(await cache.lookup(plans.acme), null)
    assert.equal(await cache.lookup(plans.acmeOther), null)
    const { cache: fresh } = await makeCache({ backend: 'redis' }, redis.url)
    try {
      assert.equal(await fresh.lookup(plans.acme), null, 'the shared tier still had the purged tenant')
      assert.notEqual(await fresh.lookup(plans.globex), null, 'another tenant was purged too')
    } finally {
      await fresh.close()
    }
    const byKey = await cache.purge({ key: (plans.globex as { key: string }).key })
    assert.deepEqual(byKey, { memory: 1, semantic: 0, redis: 1 })
    assert.equal(await cache.lookup(plans.globex), null)
  } finally {
    await cache.close()
    await peer.close()
  }
})
