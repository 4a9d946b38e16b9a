/**
 * main.ts gives back what booting used once the pools are warm (runtime/boot-memory.ts): the
 * young generation that boot grew, which neither idling nor an ordinary full collection shrinks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { getHeapSpaceStatistics } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { releaseBootMemory } from '../../gateway/src/runtime/boot-memory.ts'

const youngResident = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.physical_space_size

/** Allocates like a boot does: much of it survives several scavenges, so V8 grows the young generation. */
function growYoungGeneration(): void {
  let kept: object[][] = []
  for (let round = 0; round < 40; round++) {
    const batch: object[] = []
    for (let i = 0; i < 20_000; i++) batch.push({ round, i, name: `item-${i}` })
    kept.push(batch)
    if (kept.length > 8) kept = kept.slice(-8)
  }
  kept = []
}

test('the young generation boot grew is returned, and gc stays hidden', () => {
  growYoungGeneration()
  const before = youngResident()
  assert.ok(before >= 4 * 1024 * 1024, `the allocation grew the young generation (${before} bytes resident)`)
  const report = releaseBootMemory()
  const after = youngResident()
  assert.ok(after <= before / 4, `young generation ${before} -> ${after} bytes resident`)
  assert.ok(report.rssBefore > 0 && report.rssAfter > 0 && report.ms >= 0)
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc is not left on the global')
  assert.equal(runInNewContext('typeof gc'), 'undefined', 'V8 flags are restored: new contexts get no gc either')
})
