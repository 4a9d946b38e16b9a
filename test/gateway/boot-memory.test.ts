/**
 * main.ts gives back what booting used once the pools are warm (runtime/boot-memory.ts): the
 * young generation that boot grew, which neither idling nor an ordinary full collection shrinks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { getHeapCodeStatistics, getHeapSpaceStatistics } from 'node:v8'
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

/**
 * Compiles and runs, once each, functions with large bodies that stay referenced (as a module's
 * functions do): bytecode that nothing runs again, which only flushing gives back.
 */
const ranOnce: Array<(x: number) => number> = []
function runOnce(count: number): void {
  const body = Array.from({ length: 200 }, (_, i) => `x = (x * 31 + ${i}) % 1000003`).join('\n')
  for (let i = 0; i < count; i++) {
    const f = new Function('x', `${body}\nreturn x + ${i}`) as (x: number) => number
    f(i)
    ranOnce.push(f)
  }
}

const bytecodeBytes = (): number => getHeapCodeStatistics().bytecode_and_metadata_size

test('the bytecode of code that ran once is flushed by the boot collection, unless the process set its own age', () => {
  runOnce(400)
  const before = bytecodeBytes()
  releaseBootMemory([])
  const flushed = before - bytecodeBytes()
  runOnce(400)
  const beforeKept = bytecodeBytes()
  releaseBootMemory(['--bytecode-old-age=6'])
  const kept = beforeKept - bytecodeBytes()
  assert.ok(flushed > 1_000_000, `flushed ${flushed} bytes of bytecode`)
  assert.ok(kept < flushed / 4, `with its own --bytecode-old-age the process keeps it (${kept} bytes flushed)`)
  assert.equal(ranOnce[0]!(1), ranOnce[0]!(1), 'a flushed function still runs (compiled again)')
})
