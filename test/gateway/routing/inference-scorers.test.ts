import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PickSignals, boundedLoadFilter, kvCacheScorer, latencyScorer, loadScorer, prefillScorer, prefillWork, prefixScorer, queueScorer } from '../../../gateway/src/routing/scorers.ts'

function signals(n: number, fill: Partial<Record<'load' | 'queue' | 'kvUsage' | 'latencyMs' | 'prefixBlocks' | 'pendingPrefill' | 'msPerBlock', number[]>>, requestBlocks = 0): PickSignals {
  const s = new PickSignals()
  s.ensure(n)
  s.eligible.fill(1, 0, n)
  for (const [key, values] of Object.entries(fill)) values.forEach((v, i) => ((s as unknown as Record<string, Float64Array>)[key]![i] = v))
  s.requestBlocks = requestBlocks
  return s
}

function run(scorer: { score(s: PickSignals, out: Float64Array): void }, s: PickSignals): number[] {
  const out = new Float64Array(s.n)
  scorer.score(s, out)
  return [...out]
}

test('prefix: the share of the prompt blocks each member holds', () => {
  assert.deepEqual(run(prefixScorer, signals(3, { prefixBlocks: [0, 5, 10] }, 10)), [0, 0.5, 1])
  assert.deepEqual(run(prefixScorer, signals(2, { prefixBlocks: [0, 0] }, 0)), [0, 0], 'no blocks: no preference')
})

test('queue: 1 / (1 + waiting); an idle fleet scores 1 everywhere', () => {
  assert.deepEqual(run(queueScorer, signals(3, { queue: [0, 2, 4] })), [1, 1 / 3, 0.2])
  assert.deepEqual(run(queueScorer, signals(3, { queue: [0, 0, 0] })), [1, 1, 1])
})

test('prefill: cheapest estimated time to first token over each member\'s', () => {
  // 20-block prompt; m0 holds 16 of it, m1 none, m2 none but has 30 blocks queued.
  const s = signals(3, { prefixBlocks: [16, 0, 0], pendingPrefill: [0, 0, 30] }, 20)
  assert.deepEqual([0, 1, 2].map((i) => prefillWork(s, i)), [5, 21, 51], 'queued + uncached + 1')
  assert.deepEqual(run(prefillScorer, s), [1, 5 / 21, 5 / 51])
  // A warm prefix behind a long queue loses to a cold member with none.
  const queued = signals(2, { prefixBlocks: [16, 0], pendingPrefill: [40, 0] }, 20)
  assert.deepEqual(run(prefillScorer, queued), [21 / 45, 1])
})

test('prefill: a member learned to be slower costs more; unmeasured members take the mean of the measured', () => {
  const s = signals(3, { msPerBlock: [2, 6, 0] }, 10)
  // Same work (11 blocks) everywhere: costs 22, 66 and 11 x mean(2, 6) = 44.
  assert.deepEqual(run(prefillScorer, s), [1, 22 / 66, 22 / 44])
  assert.deepEqual(run(prefillScorer, signals(2, {}, 0)), [1, 1], 'nothing known: all equal')
  const ineligible = signals(2, { msPerBlock: [1, 100] }, 4)
  ineligible.eligible[1] = 0
  assert.equal(run(prefillScorer, ineligible)[0], 1)
})

test('kvCache: free fraction; unknown scores as empty', () => {
  assert.deepEqual(run(kvCacheScorer, signals(3, { kvUsage: [0.25, 1, -1] })), [0.75, 0, 1])
})

test('load: smooth, relative to the mean', () => {
  // mean 2: scale 3.
  assert.deepEqual(run(loadScorer, signals(3, { load: [0, 2, 4] })), [1, 1 / (1 + 2 / 3), 1 / (1 + 4 / 3)])
  assert.deepEqual(run(loadScorer, signals(2, { load: [0, 0] })), [1, 1])
})

test('latency: the fastest over each member; unmeasured scores 1', () => {
  assert.deepEqual(run(latencyScorer, signals(3, { latencyMs: [10, 100, 0] })), [1, 0.1, 1])
})

test('bounded load clears members above factor x mean, never all, and leaves low loads alone', () => {
  const s = signals(4, { load: [10, 1, 1, 0] })
  // mean with this request: 13/4 -> cap ceil(1.5 * 13 / 4) = 5: the member at 10 may not serve.
  assert.equal(boundedLoadFilter(1.5).filter(s), 1)
  assert.deepEqual([...s.eligible.subarray(0, 4)], [0, 1, 1, 1])
  const low = signals(4, { load: [3, 0, 0, 0] })
  assert.equal(boundedLoadFilter(1.5).filter(low), 0, 'a few requests in flight are no pile-up (the cap is at least 4)')
  const over = signals(4, { load: [4, 0, 0, 0] })
  assert.equal(boundedLoadFilter(1.5).filter(over), 1)
  const even = signals(3, { load: [5, 5, 5] })
  assert.equal(boundedLoadFilter(1).filter(even), 0, 'equal loads all pass (the filter never empties the set)')
})
