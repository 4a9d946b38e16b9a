import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PickSignals, allowedLoad, boundedLoadFilter, capacityOf, kvCacheScorer, latencyScorer, loadScorer, prefillCost, prefillScorer, prefillWork, placementFilter, prefixScorer, queueScorer, stickyPick } from '../../../gateway/src/routing/scorers.ts'

function signals(n: number, fill: Partial<Record<'load' | 'queue' | 'waiting' | 'admits' | 'kvUsage' | 'latencyMs' | 'prefixBlocks' | 'privateBlocks' | 'pendingPrefill' | 'msPerBlock' | 'placed', number[]>>, requestBlocks = 0): PickSignals {
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

test('bounded load sheds a full member\'s newest conversations first: the cap rises with the share of the prompt only it holds', () => {
  // cap = max(4, ceil(1.5 x 9 / 4)) = 4; m0 holds 6 in flight.
  const loads = [6, 1, 1, 0]
  const first = signals(4, { load: loads, prefixBlocks: [8, 8, 8, 8] }, 12)
  assert.equal(boundedLoadFilter(1.5).filter(first), 1, 'a first turn (only the shared system prompt anywhere) moves at the cap')
  assert.equal(first.eligible[0], 0)
  // A late turn: 40 of its 48 blocks are its own history, on m0 only:
  // allowed 4 + ceil(4 x 40 / 48) = 8 > 6 + 1.
  const late = signals(4, { load: loads, prefixBlocks: [48, 8, 8, 8], privateBlocks: [40, 0, 0, 0] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(late), 0, 'a long private history stays above the cap')
  assert.equal(late.eligible[0], 1)
  // Never beyond twice the cap, however much it holds: cap ceil(1.5 x 13 / 4) = 5, at most 10.
  const full = signals(4, { load: [10, 1, 1, 0], prefixBlocks: [48, 0, 0, 0], privateBlocks: [48, 0, 0, 0] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(full), 1)
  assert.equal(full.eligible[0], 0)
  // What a member under the cap also holds is no reason to stay: m1 holds the same history.
  const copied = signals(4, { load: loads, prefixBlocks: [48, 48, 8, 8], privateBlocks: [40, 40, 0, 0] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(copied), 1)
  assert.equal(copied.eligible[0], 0)
  assert.deepEqual([allowedLoad(4, 0, 48), allowedLoad(4, 12, 48), allowedLoad(4, 48, 48), allowedLoad(4, 99, 48), allowedLoad(4, 5, 0)], [4, 5, 8, 8, 4])
})

test('stickiness: the member holding this prompt\'s private blocks keeps it unless its estimate is worse by more than the margin', () => {
  // 40-block prompt: m0 (home) holds 36, 28 of them no one else holds; m1 holds the 8 shared ones.
  // Same pace, nothing pending: home costs 5, m1 33.
  const home = { prefixBlocks: [36, 8], privateBlocks: [28, 0] }
  assert.equal(stickyPick(signals(2, home, 40), 1, 0.5), 0, 'a sum that preferred m1 (small scorers) is overruled: the home is sooner anyway')
  // Home's pace learned 7x m1's (a noisy sample): 7 x 5 = 35 against 33 + 0.5 x 28 = 47: stays.
  const noisy = signals(2, { ...home, msPerBlock: [7, 1] }, 40)
  assert.equal(stickyPick(noisy, 1, 0.5), 0)
  assert.equal(stickyPick(noisy, 1, 0), 1, '0 turns the rule off')
  // 60 blocks queued on the home: 65 against 47: it moves.
  const queued = signals(2, { ...home, pendingPrefill: [60, 0] }, 40)
  assert.equal(prefillCost(queued, 0, 1), 65)
  assert.equal(stickyPick(queued, 1, 0.5), 1)
  assert.equal(stickyPick(queued, 1, 2), 0, 'a larger stickiness tolerates more: 65 <= 33 + 2 x 28')
  // A prefix other members hold too (a shared system prompt) is no home: the sum decides.
  const shared = signals(2, { prefixBlocks: [36, 8], privateBlocks: [0, 0], msPerBlock: [7, 1] }, 40)
  assert.equal(stickyPick(shared, 1, 0.5), 1)
  // No home to go back to: best is the home, or no prompt blocks.
  assert.equal(stickyPick(signals(2, home, 40), 0, 0.5), 0)
  assert.equal(stickyPick(signals(2, {}, 0), 1, 0.5), 1)
  const ineligible = signals(2, home, 40)
  ineligible.eligible[0] = 0
  assert.equal(stickyPick(ineligible, 1, 0.5), 1, 'a filtered home is never chosen')
})

test('stickiness never keeps a home whose pod reports a longer queue of its own', () => {
  const s = signals(2, { prefixBlocks: [36, 8], privateBlocks: [28, 0], waiting: [3, 0] }, 40)
  assert.equal(stickyPick(s, 1, 0.5), 1)
  s.waiting[1] = 3
  assert.equal(stickyPick(s, 1, 0.5), 0, 'equal queues: the estimate and the margin decide')
})

test('bounded load: a conversation\'s home whose pod has room is not capped at all', () => {
  // cap max(4, ceil(1.5 x 13 / 4)) = 5, twice that 10: m0 holds 10 in flight and 40 of this
  // prompt's 48 blocks are its own history there.
  const history = { load: [10, 1, 1, 0], prefixBlocks: [48, 8, 8, 8], privateBlocks: [40, 0, 0, 0] }
  const free = signals(4, { ...history, admits: [1, 1, 1, 1] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(free), 0, 'staying costs 8 blocks, a move 40 and a wait for whatever comes next')
  assert.equal(free.eligible[0], 1)
  const queued = signals(4, { ...history, admits: [0, 1, 1, 1], waiting: [1, 0, 0, 0] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(queued), 1, 'a real queue on the pod: the cap applies, with no allowance')
  const silent = signals(4, history, 48)
  assert.equal(boundedLoadFilter(1.5).filter(silent), 1, 'a pod that reports nothing keeps the ceiling of twice the cap')
  // A first turn, or the same prompt again (nothing private anywhere), moves at the cap however free the pod.
  const first = signals(4, { load: [10, 1, 1, 0], prefixBlocks: [8, 8, 8, 8], admits: [1, 1, 1, 1] }, 12)
  assert.equal(boundedLoadFilter(1.5).filter(first), 1)
  // Two members hold the history: the one under the cap will do, the full one is no home.
  const copied = signals(4, { ...history, prefixBlocks: [48, 48, 8, 8], privateBlocks: [40, 40, 0, 0], admits: [1, 1, 1, 1] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(copied), 1)
  assert.equal(copied.eligible[0], 0)
})

test('bounded load: a member whose pod reports waiting requests gets no allowance above the cap', () => {
  const s = signals(4, { load: [6, 1, 1, 0], waiting: [1, 0, 0, 0], prefixBlocks: [48, 8, 8, 8], privateBlocks: [40, 0, 0, 0] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(s), 1)
  assert.equal(s.eligible[0], 0)
  const guessed = signals(4, { load: [6, 1, 1, 0], queue: [1, 0, 0, 0], prefixBlocks: [48, 8, 8, 8], privateBlocks: [40, 0, 0, 0] }, 48)
  assert.equal(boundedLoadFilter(1.5).filter(guessed), 0, 'the gateway\'s own queue estimate (a guessed batch size) is not the pod saying so')
})

test('placement: a new conversation may not go to a member with more than its share of recent traffic', () => {
  // Recent traffic 6/2/2/0: with this request the mean is 11/4, the limit 1.1 x that = 3.025.
  const s = signals(4, { placed: [6, 2, 2, 0] }, 10)
  assert.equal(placementFilter(1.1).filter(s), 1)
  assert.deepEqual([...s.eligible.subarray(0, 4)], [0, 1, 1, 1])
  // A later turn: its home (private blocks) is not restricted, a move is placed like a new conversation.
  const later = signals(4, { placed: [6, 5, 2, 0], privateBlocks: [5, 0, 0, 0] }, 10)
  assert.equal(placementFilter(1.1).filter(later), 1, 'limit 1.1 x 14 / 4 = 3.85')
  assert.deepEqual([...later.eligible.subarray(0, 4)], [1, 0, 1, 1], 'the home stays eligible above the limit; m1 may not take the move')
  // With a home eligible, every other member may be cleared; the home is then the only choice.
  const homeOnly = signals(3, { placed: [1, 9, 9], privateBlocks: [5, 0, 0] }, 10)
  assert.equal(placementFilter(1).filter(homeOnly), 2)
  assert.deepEqual([...homeOnly.eligible.subarray(0, 3)], [1, 0, 0])
  // Nothing sent anywhere yet: all pass. All equal: all pass.
  assert.equal(placementFilter(1.1).filter(signals(3, { placed: [0, 0, 0] }, 10)), 0)
  assert.equal(placementFilter(1).filter(signals(3, { placed: [4, 4, 4] }, 10)), 0)
  // Never empties the set: the least busy member stays even when bounded load left only busy ones.
  const busy = signals(3, { placed: [9, 8, 0] }, 10)
  busy.eligible[2] = 0
  assert.equal(placementFilter(1).filter(busy), 0, 'of 9 and 8, the limit 1 x 18/2 = 9 clears neither')
  const one = signals(2, { placed: [30, 1] })
  assert.equal(placementFilter(1.1).filter(one), 1, 'a request with no prefix information is placed too')
  assert.deepEqual([...one.eligible.subarray(0, 2)], [0, 1])
})

test('placement: a member slower than the mean counts its traffic against a smaller capacity', () => {
  // Paces 1/1/1/3: mean 1.5, so capacities 1/1/1/0.5. Equal traffic (2 each): the slow member's
  // 2 / 0.5 = 4 is over the limit 1.1 x 9 / 3.5 = 2.83; the others' 2 are not.
  const s = signals(4, { placed: [2, 2, 2, 2], msPerBlock: [1, 1, 1, 3] }, 10)
  assert.deepEqual([0, 1, 2, 3].map((i) => capacityOf(s, i, 1.5)), [1, 1, 1, 0.5])
  assert.equal(placementFilter(1.1).filter(s), 1)
  assert.deepEqual([...s.eligible.subarray(0, 4)], [1, 1, 1, 0])
  // Below its share it still takes new conversations: 1 / 0.5 = 2 against a limit of 1.1 x 8 / 3.5 = 2.51.
  const under = signals(4, { placed: [2, 2, 2, 1], msPerBlock: [1, 1, 1, 3] }, 10)
  assert.equal(placementFilter(1.1).filter(under), 0)
  // Unmeasured members take the mean pace: full capacity.
  assert.equal(capacityOf(signals(2, { msPerBlock: [0, 2] }), 0, 2), 1)
})
