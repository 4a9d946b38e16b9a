/**
 * A stored entry owns exactly its bytes. Measuring the process's buffer memory around a loop of
 * commits depended on when the GC ran (it flaked under load); what the regression was about is
 * structural and checked directly: no stored payload is a view into a larger allocation.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { brotliCompressSync } from 'node:zlib'
import { storeEntry, storedBytes, type CachedResponse } from '../../../gateway/src/cache/entry.ts'
import { chatJson } from './helpers.ts'

function response(i: number): CachedResponse {
  const body = chatJson(`answer ${i}: ${'the same few words repeat and compress well. '.repeat(20)}`)
  return { key: `k${i}`, scope: 't', endpoint: 'chat.completions', status: 200, shape: 'json', sourceShape: 'json', hasUsage: false, body, size: body.length, storedAt: 0, expiresAt: 1, similarity: null }
}

test('stored entries hold about the bytes the cache accounts for, not whole zlib output chunks', () => {
  const sample = response(0)
  // Positive control: what zlib hands back is a small view into a much larger output chunk.
  const raw = brotliCompressSync(sample.body)
  assert.ok(raw.buffer.byteLength > raw.length * 4, `zlib output ${raw.length} bytes in a ${raw.buffer.byteLength}-byte allocation`)

  for (let i = 0; i < 200; i++) {
    const e = storeEntry(response(i))
    assert.equal(e.meta.z, 1, 'compressible answers are stored compressed')
    assert.equal(e.payload.byteOffset, 0)
    assert.equal(e.payload.buffer.byteLength, e.payload.length, `entry ${i} pins ${e.payload.buffer.byteLength} bytes for a ${e.payload.length}-byte payload`)
    assert.ok(storedBytes(e) >= e.payload.buffer.byteLength, 'the accounting covers the whole allocation')
  }
})
