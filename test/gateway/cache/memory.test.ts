/**
 * A stored entry owns exactly its bytes. Measuring the process's buffer memory around a loop of
 * commits depended on when the GC ran (it flaked under load); what the regression was about is
 * structural and checked directly: no stored payload is a view into a larger allocation.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { brotliCompressSync } from 'node:zlib'
import { compressEntry, storeEntry, storedBytes, type CachedResponse } from '../../../gateway/src/cache/entry.ts'
import { chatJson, chatRequest, makeCache } from './helpers.ts'

function response(i: number): CachedResponse {
  const body = chatJson(`answer ${i}: ${'the same few words repeat and compress well. '.repeat(20)}`)
  return { key: `k${i}`, scope: 't', endpoint: 'chat.completions', status: 200, shape: 'json', sourceShape: 'json', hasUsage: false, body, size: body.length, storedAt: 0, expiresAt: 1, similarity: null }
}

test('stored entries hold about the bytes the cache accounts for, not whole zlib output chunks', async () => {
  const sample = response(0)
  // Positive control: what zlib hands back is a small view into a much larger output chunk.
  const raw = brotliCompressSync(sample.body)
  assert.ok(raw.buffer.byteLength > raw.length * 4, `zlib output ${raw.length} bytes in a ${raw.buffer.byteLength}-byte allocation`)

  for (let i = 0; i < 200; i++) {
    const first = storeEntry(response(i))
    // Stored uncompressed at once (owning its bytes too), compressed on the thread pool after.
    assert.equal(first.meta.z, 0)
    assert.equal(first.payload.buffer.byteLength, first.payload.length)
    const e = (await compressEntry(first))!
    assert.ok(e !== null)
    assert.equal(e.meta.z, 1, 'compressible answers are stored compressed')
    assert.equal(e.payload.byteOffset, 0)
    assert.equal(e.payload.buffer.byteLength, e.payload.length, `entry ${i} pins ${e.payload.buffer.byteLength} bytes for a ${e.payload.length}-byte payload`)
    assert.ok(storedBytes(e) >= e.payload.buffer.byteLength, 'the accounting covers the whole allocation')
  }
})

test('a small answer is stored as is: compressing it would cost more than it saves', async () => {
  const { cache } = await makeCache()
  const plan = cache.plan(chatRequest({ body: { model: 'llama', temperature: 0, messages: [{ role: 'user', content: 'short' }] } }))
  const body = chatJson('yes')
  assert.ok(plan.mode === 'lookup' && cache.commit(plan, 'application/json', body))
  await cache.settled()
  const hit = cache.lookup(plan)
  assert.ok(hit !== null && !(hit instanceof Promise))
  assert.equal(hit.body.length, body.length)
  assert.ok(cache.stats().exact!.bytes < body.length + 400)
  await cache.close()
})

test('an unchecked entry never crosses to another process: the wire form refuses it', async () => {
  const { decodeEntry, encodeEntry, uncheckedEntry, checkEntry } = await import('../../../gateway/src/cache/entry.ts')
  const body = chatJson('yes')
  const raw = uncheckedEntry('k', 't', 'chat.completions', 'json', body, 0, 1)
  assert.equal(raw.meta.checked, false)
  assert.equal(decodeEntry(encodeEntry(raw)), null)
  const checked = checkEntry(raw)!
  assert.equal(checked.meta.checked, true)
  assert.equal(checked.meta.hasUsage, true)
  assert.equal(checked.payload, raw.payload, 'a JSON answer keeps its bytes')
  assert.deepEqual(decodeEntry(encodeEntry(checked))?.meta, checked.meta)
})
