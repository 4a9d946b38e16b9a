import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { chatJson, chatRequest, makeCache } from './helpers.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

test('stored entries hold about the bytes the cache accounts for, not whole zlib output chunks, and large ones end up compressed', async () => {
  const { cache } = await makeCache()
  const n = 3000
  gc()
  const before = process.memoryUsage().arrayBuffers
  for (let i = 0; i < n; i++) {
    const req = chatRequest({ body: { model: 'llama', temperature: 0, messages: [{ role: 'user', content: `question ${i}` }] } })
    const plan = cache.plan(req)
    assert.equal(plan.mode, 'lookup')
    const answer = `answer ${i}: ${'the same few words repeat and compress well. '.repeat(30)}`
    assert.ok(cache.commit(plan as Extract<typeof plan, { mode: 'lookup' }>, 'application/json', chatJson(answer)))
  }
  const raw = cache.stats().exact!.bytes
  await cache.settled()
  // The uncompressed copies are garbage now; their external memory is released over two collections.
  gc()
  await new Promise((r) => setImmediate(r))
  gc()
  const held = process.memoryUsage().arrayBuffers - before
  const accounted = cache.stats().exact!.bytes
  // Before entries owned their bytes, each pinned a 16 KiB+ brotli output chunk: ~50 MB here.
  assert.ok(held < accounted * 3 + 1_000_000, `entries hold ${held} bytes of buffers for ${accounted} accounted`)
  // Compression ran after the commits returned, on the thread pool: every entry shrank.
  assert.ok(accounted < raw / 4, `compressed ${raw} -> ${accounted} bytes`)
  await cache.close()
})

test('a small answer is stored as is: compressing it would cost more than it saves', async () => {
  const { cache } = await makeCache()
  const req = chatRequest({ body: { model: 'llama', temperature: 0, messages: [{ role: 'user', content: 'short' }] } })
  const plan = cache.plan(req) as Extract<ReturnType<typeof cache.plan>, { mode: 'lookup' }>
  const body = chatJson('yes')
  assert.ok(cache.commit(plan, 'application/json', body))
  await cache.settled()
  const hit = cache.lookup(plan)
  assert.ok(hit !== null && !(hit instanceof Promise))
  assert.equal(hit.body.length, body.length)
  assert.ok(cache.stats().exact!.bytes < body.length + 400)
  await cache.close()
})
