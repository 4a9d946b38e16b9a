import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InferenceAwareBalancer } from '../../../gateway/src/routing/balancer-inference-aware.ts'
import { InferenceAwareSchema, type InferenceAwareConfig } from '../../../gateway/src/routing/config.ts'
import type { Member } from '../../../gateway/src/routing/member.ts'
import { parseVllmMetrics } from '../../../gateway/src/routing/pod-load.ts'
import { WARMUP_SAMPLES } from '../../../gateway/src/routing/prefill-pace.ts'
import { prefixBlocks } from '../../../gateway/src/routing/prefix-hash.ts'
import { RouteRequest } from '../../../gateway/src/routing/route-request.ts'
import { eject, makeMember, makeMembers, routingConfig } from './helpers.ts'

const cfg = (input: Record<string, unknown> = {}): InferenceAwareConfig => InferenceAwareSchema.parse(input)
const SYSTEM = 'Answer as a travel agent who knows every timetable in Europe. '.repeat(30)

function request(session: string, turn = 0, explain = false): RouteRequest {
  const messages = [{ role: 'system', content: SYSTEM }]
  for (let t = 0; t <= turn; t++) messages.push({ role: 'user', content: `${session} asks question ${t}: `.padEnd(300, 'x') })
  return new RouteRequest(null, prefixBlocks({ model: 'm', messages }, 'm', 256, 256), explain)
}

/** The same first token, as many times as a pace needs before it is trusted (its warm-up). */
function teach(m: Member<null>, work: number, ms: number, now: number): void {
  for (let k = 0; k < WARMUP_SAMPLES; k++) m.endPrefill(0, work, ms, now)
}

function report(m: Member<null>, running: number, waiting: number, kv: number, now: number): void {
  m.pod.update({ running, waiting, kvUsage: kv }, m.inFlight, now)
}

test('concurrent first turns sharing a system prompt spread; each later turn returns to its member', () => {
  const members = makeMembers(4)
  const b = new InferenceAwareBalancer(cfg())
  const home = new Map<string, Member<null>>()
  for (const s of Array.from({ length: 16 }, (_, i) => `s${i}`)) {
    const m = b.pick(members, null, null, 0, request(s, 0))!
    m.onStart(0)
    home.set(s, m)
  }
  assert.ok(new Set(home.values()).size >= 3, `first turns spread over the members (${[...home.values()].map((m) => m.name)})`)
  for (const m of home.values()) m.onSuccess(1)
  for (let turn = 1; turn < 4; turn++) {
    for (const [s, m] of home) assert.equal(b.pick(members, null, null, 2, request(s, turn))!.name, m.name, `${s} turn ${turn}`)
  }
})

test('a queue on the member holding the prefix sends the request elsewhere', () => {
  const members = makeMembers(3)
  const b = new InferenceAwareBalancer(cfg())
  const home = b.pick(members, null, null, 0, request('s', 0))!
  // Twice: a queue the pod reports in two scrapes in a row is real.
  for (const at of [1, 1]) for (const m of members) report(m, m === home ? 32 : 2, m === home ? 12 : 0, m === home ? 0.9 : 0.2, at)
  const r = request('s', 1, true)
  const next = b.pick(members, null, null, 2, r)!
  assert.notEqual(next, home)
  // The explanation names the home the turn left, and why: 12 waiting there, so bounded load took it out.
  assert.match(r.explanation!, new RegExp(`; home=${home.name}:filtered:private=\\d+:load=44:waiting=12$`))
})

test('bounded load: a hot prefix does not pile onto one member', () => {
  const members = makeMembers(4)
  const b = new InferenceAwareBalancer(cfg({ weights: { queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  const counts = new Map<string, number>()
  // One prompt, many requests in flight at once: prefix affinity alone would send all to one member.
  for (let i = 0; i < 40; i++) {
    const m = b.pick(members, null, null, 0, request('same', 0))!
    m.onStart(0)
    counts.set(m.name, (counts.get(m.name) ?? 0) + 1)
  }
  const max = Math.max(...counts.values())
  assert.ok(max <= Math.ceil((1.5 * 40) / 4) + 1, `at most ~1.5x the mean on one member (${[...counts.entries()]})`)
  const unbounded = new InferenceAwareBalancer(cfg({ weights: { queue: 0, kvCache: 0, load: 0, latency: 0 }, boundedLoad: 0, placement: { factor: 0 } }))
  const fresh = makeMembers(4)
  const names = new Set<string>()
  for (let i = 0; i < 20; i++) {
    const m = unbounded.pick(fresh, null, null, 0, request('same', 0))!
    m.onStart(0)
    names.add(m.name)
  }
  assert.equal(names.size, 1, 'without the bound, affinity alone keeps one member (so the bound is what spreads)')
})

test('a slow member loses to the latency scorer when nothing else differs', () => {
  const members = makeMembers(2)
  members[0]!.onFirstByte(500, 0)
  members[1]!.onFirstByte(20, 0)
  // Placement off: it would share new requests out by recent traffic, whatever the latency.
  const b = new InferenceAwareBalancer(cfg({ placement: { factor: 0 } }))
  for (let i = 0; i < 5; i++) assert.equal(b.pick(members, null, null, 1, new RouteRequest(null))!.name, 'm1')
})

test('stale pod metrics are ignored: the gateway falls back to its own outstanding counts', () => {
  const members = makeMembers(2)
  const b = new InferenceAwareBalancer(cfg({ weights: { prefix: 0, kvCache: 0, latency: 0 } }))
  report(members[0]!, 0, 0, 0, 0)
  report(members[1]!, 30, 20, 1, 0)
  assert.equal(b.pick(members, null, null, 100, null)!.name, 'm0', 'fresh: m1 is full')
  members[0]!.onStart(5000)
  members[0]!.onStart(5000)
  assert.equal(b.pick(members, null, null, 5000, null)!.name, 'm1', 'stale (>2 s): only outstanding counts')
})

test('unavailable and excluded members are never picked; none left is null', () => {
  const members = makeMembers(3)
  const b = new InferenceAwareBalancer(cfg())
  eject(members[0]!, 0)
  const excluded = new Set([members[1]!])
  for (let i = 0; i < 10; i++) assert.equal(b.pick(members, null, excluded, 1, request('s', i))!.name, 'm2')
  excluded.add(members[2]!)
  assert.equal(b.pick(members, null, excluded, 1, request('s', 0)), null)
})

test('explain says who won and why', () => {
  const members = makeMembers(2)
  const b = new InferenceAwareBalancer(cfg())
  const first = b.pick(members, null, null, 0, request('s', 0))!
  const r = request('s', 1, true)
  assert.equal(b.pick(members, null, null, 0, r), first)
  assert.match(r.explanation!, new RegExp(`^member=${first.name}; score=\\d\\.\\d{3}; prefill=1\\.000x4; prefix=0\\.\\d{3}x1; queue=1\\.000x1;`))
  assert.match(r.explanation!, /prefix_blocks=\d+\/\d+; pending_blocks=0; queue=0; load=0; placed=1\.0; runner_up=m\d:\d\.\d{3}; filtered=0$/)
  const quiet = request('s', 2)
  b.pick(members, null, null, 0, quiet)
  assert.equal(quiet.explanation, null, 'no explanation unless asked')
})

test('prefill estimate: a warm prefix wins until the prefill queued on its member costs more than a cold start elsewhere', () => {
  const members = makeMembers(3)
  // The estimate alone (stickiness would keep the home a little longer: its own test below).
  const b = new InferenceAwareBalancer(cfg({ stickiness: 0, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  const first = request('s', 0)
  const home = b.pick(members, null, null, 0, first)!
  const total = first.blocks!.length
  assert.equal(first.charge, total + 1, 'a cold member is charged the whole prompt plus one')
  const next = request('s', 1)
  assert.equal(b.pick(members, null, null, 1, next), home, 'nothing queued anywhere: the warm member')
  assert.ok(next.charge < next.blocks!.length / 2, `only the uncached tail is charged (${next.charge} of ${next.blocks!.length})`)
  // Other conversations' prompts sent to the home member, no first token yet: more work than a cold prefill elsewhere.
  home.beginPrefill(next.blocks!.length + 2)
  const third = request('s', 2)
  assert.notEqual(b.pick(members, null, null, 2, third), home)
  assert.equal(third.charge, third.blocks!.length + 1)
})

test('prefill pace is learned per member: the same work goes to the member that prefills faster', () => {
  // Paces over the work alone, from cold prefills only (the defaults count 4 fixed blocks and learn from every first token).
  const cold = routingConfig({ inferenceAware: { pace: { minBlocks: 32, fixedBlocks: 0, memoryMs: 2_000 } } })
  const members = [makeMember('m0', cold), makeMember('m1', cold)]
  const [fast, slow] = members as [Member<null>, Member<null>]
  // Same work behind each first token (40 blocks), three times the time on one.
  for (const [m, ms] of [[fast, 400], [slow, 1200]] as const) {
    const work = m.beginPrefill(40)
    m.endPrefill(40, work, ms, 0)
    teach(m, work, ms, 0)
  }
  assert.equal(fast.prefillPending, 0, 'the charge is released at the first token')
  assert.equal(fast.prefillPaceEstimate.value, 10)
  assert.equal(slow.prefillPaceEstimate.value, 30)
  const b = new InferenceAwareBalancer(cfg({ pace: { minBlocks: 32, fixedBlocks: 0 }, placement: { factor: 0 }, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  // The fast member keeps winning until what is queued on it takes longer than the slow one's
  // queue: fast costs 10 x 9k for its k-th, slow 30 x 9k, so the slow member takes every fourth.
  const picks: string[] = []
  for (let i = 0; i < 8; i++) {
    // Prompts sharing nothing (8 blocks each, charged 9), so only the queues and the paces differ.
    const r = new RouteRequest(null, prefixBlocks({ model: 'm', messages: [{ role: 'user', content: `${i} `.repeat(1100) }] }, 'm', 256, 256))
    const m = b.pick(members, null, null, 0, r)!
    m.beginPrefill(r.charge)
    picks.push(m.name)
  }
  assert.equal(picks.filter((n) => n === fast.name).length, 6, picks.join(','))
  slow.dropPrefill(1e6)
  assert.equal(slow.prefillPending, 0, 'never negative')
  const rate = slow.prefillPaceEstimate.value
  slow.endPrefill(0, 0, 500, 1)
  slow.beginPrefill(20)
  slow.endPrefill(20, 20, 5000, 1)
  assert.equal(slow.prefillPaceEstimate.value, rate, 'little work (under 32 blocks) teaches nothing: mostly fixed costs')
  assert.equal(slow.prefillPace(2_000), rate)
  assert.equal(slow.prefillPace(2_001), 0, 'a pace not confirmed for 2 s is forgotten (the member gets tried again)')
  slow.beginPrefill(40)
  slow.endPrefill(40, 40, 200, 5_000)
  assert.equal(slow.prefillPace(5_000), 0, 'a forgotten pace restarts with a warm-up')
  teach(slow, 40, 200, 5_000)
  assert.equal(slow.prefillPaceEstimate.value, 5, 'and is then learned from the new samples')
})

test('pace with fixed costs: warm first tokens teach, so a pod slower on every count loses a warm turn it does not hold', () => {
  const pace = { minBlocks: 0, fixedBlocks: 4 }
  const members = [makeMember('a', routingConfig({ inferenceAware: { pace } })), makeMember('b', routingConfig({ inferenceAware: { pace } }))]
  const [a, b] = members as [Member<null>, Member<null>]
  // Warm first tokens behind 2 blocks of work: 60 ms on a, 180 ms on b (3x on every count).
  for (const [m, ms] of [[a, 60], [b, 180]] as const) {
    m.beginPrefill(2)
    m.endPrefill(2, 2, ms, 0)
    teach(m, 2, ms, 0)
  }
  assert.equal(a.prefillPaceEstimate.value, 10, '60 ms over 2 blocks of work + 4 fixed')
  assert.equal(b.prefillPaceEstimate.value, 30)
  // Learning from cold prefills only (samples behind 32+ blocks) the same first tokens teach nothing.
  const plain = makeMember('plain', routingConfig({ inferenceAware: { pace: { minBlocks: 32, fixedBlocks: 0 } } }))
  plain.beginPrefill(2)
  plain.endPrefill(2, 2, 60, 0)
  teach(plain, 2, 60, 0)
  assert.equal(plain.prefillPaceEstimate.value, 0)

  const bal = new InferenceAwareBalancer(cfg({ pace, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  const r = new RouteRequest(null, prefixBlocks({ model: 'm', messages: [{ role: 'user', content: 'q '.repeat(1100) }] }, 'm', 256, 256), true)
  // Nothing cached anywhere, same work (8 blocks + 1): a costs 10 x (9 + 4), b 30 x (9 + 4).
  assert.equal(bal.pick(members, null, null, 1, r), a)
  assert.match(r.explanation!, /prefill=1\.000x4/)
  // b holding the whole prompt (1 block of work + 4 fixed: 150 ms) still loses to a cold a (130 ms) ...
  bal.index.record(r.blocks!, b)
  const again = new RouteRequest(null, r.blocks, false)
  assert.equal(bal.pick(members, null, null, 1, again), a)
  // ... until a has more queued than that: 10 x (9 + 3 + 4) = 160 > 150 (a fresh index: the pick above recorded a).
  const bal2 = new InferenceAwareBalancer(cfg({ pace, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  bal2.index.record(r.blocks!, b)
  a.beginPrefill(3)
  assert.equal(bal2.pick(members, null, null, 1, new RouteRequest(null, r.blocks, false)), b)
})

test('pace config: fixedBlocks and minBlocks are validated', () => {
  assert.deepEqual(cfg().pace, { minBlocks: 0, fixedBlocks: 4, memoryMs: 10_000, tolerance: 1.5 })
  assert.deepEqual(cfg().placement, { factor: 0, decayMs: 10_000 })
  assert.throws(() => cfg({ pace: { tolerance: 0.5 } }))
  assert.throws(() => cfg({ pace: { memoryMs: 0 } }))
  assert.throws(() => cfg({ pace: { fixedBlocks: -1 } }))
  assert.throws(() => cfg({ pace: { minBlocks: 1.5 } }))
  assert.throws(() => cfg({ pace: { other: 1 } }))
})

test('vLLM /metrics text: the three gauges, summed over engines, older KV name accepted', () => {
  const text = [
    '# HELP vllm:num_requests_running Number of requests in model execution batches.',
    '# TYPE vllm:num_requests_running gauge',
    'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
    'vllm:num_requests_running{engine="1",model_name="m"} 2.0',
    'vllm:num_requests_waiting{engine="0",model_name="m"} 4.0',
    'vllm:num_requests_waiting{engine="1",model_name="m"} 0.0',
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
    'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.25',
    'vllm:num_requests_running_total_bogus 99',
  ].join('\n')
  assert.deepEqual(parseVllmMetrics(text), { running: 5, waiting: 4, kvUsage: 0.375 })
  assert.deepEqual(parseVllmMetrics('vllm:num_requests_waiting 1\nvllm:gpu_cache_usage_perc{model_name="m"} 0.5 1700000000\n'), { running: 0, waiting: 1, kvUsage: 0.5 })
  assert.equal(parseVllmMetrics('# nothing\nhttp_requests_total 5\n'), null)
})

test('pod queue: requests waiting in two scrapes in a row are a queue; one waiting for the next engine step is not', () => {
  const [m] = makeMembers(1)
  report(m!, 4, 1, 0.3, 0)
  assert.equal(m!.pod.queued(), false, 'a request that arrived during a step')
  report(m!, 4, 0, 0.3, 250)
  assert.equal(m!.pod.queued(), false, 'admitted at the step after')
  report(m!, 16, 3, 0.6, 500)
  assert.equal(m!.pod.queued(), false, 'one scrape cannot tell a queue from a step boundary')
  report(m!, 16, 2, 0.6, 750)
  assert.equal(m!.pod.queued(), true, 'still waiting a scrape later')
  report(m!, 16, 0, 0.6, 1000)
  assert.equal(m!.pod.queued(), false, 'nothing waiting now')
})

test('a conversation stays home above the bounded-load cap while its pod has room, and leaves a real queue', () => {
  const run = (running: number, waiting: number, persists: boolean): { stayed: boolean; explanation: string } => {
    const members = makeMembers(4)
    const b = new InferenceAwareBalancer(cfg())
    const home = b.pick(members, null, null, 0, request('s', 0))!
    for (const m of members) report(m, 0, 0, 0.1, 0)
    // Eight more in flight on the home (other conversations), none elsewhere: cap max(4, ceil(1.5 x 9 / 4)) = 4.
    for (let i = 0; i < 8; i++) home.onStart(1)
    report(home, running, waiting, 0.3, 1)
    if (persists) report(home, running, waiting, 0.3, 1)
    const r = request('s', 6, true)
    return { stayed: b.pick(members, null, null, 2, r) === home, explanation: r.explanation! }
  }
  assert.equal(run(8, 1, false).stayed, true, 'a request waiting for the next step: the history stays')
  const full = run(16, 1, true)
  assert.equal(full.stayed, false, 'requests still waiting a scrape later: a real queue, and the cap applies')
  assert.match(full.explanation, /; home=m\d:filtered:private=\d+:load=\d+:waiting=1$/)
})

test('pod estimate between scrapes: sent requests fill free batch slots, then queue', () => {
  const [m] = makeMembers(1)
  report(m!, 8, 2, 0.5, 0) // saturated once: batch size 8 learned
  report(m!, 6, 0, 0.5, 1)
  assert.equal(m!.pod.queue(m!.inFlight), 0)
  for (let i = 0; i < 3; i++) m!.onStart(2)
  assert.equal(m!.pod.load(m!.inFlight), 9)
  assert.equal(m!.pod.queue(m!.inFlight), 1, 'two free slots, three sent: one waits')
})

test('stickiness: a conversation stays on its home when a noisy pace makes it look a little slower; a real queue still moves it', () => {
  const run = (stickiness: number, queuedOnHome: number): { home: Member<null>; next: Member<null>; explanation: string } => {
    // Paces over the work alone (no fixed blocks), to keep the arithmetic below short.
    const pace = { minBlocks: 0, fixedBlocks: 0 }
    const members = ['m0', 'm1', 'm2'].map((name) => makeMember(name, routingConfig({ inferenceAware: { pace } })))
    const b = new InferenceAwareBalancer(cfg({ stickiness, pace, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
    const home = b.pick(members, null, null, 0, request('s', 0))!
    for (let turn = 1; turn <= 5; turn++) assert.equal(b.pick(members, null, null, 0, request('s', turn)), home, `turn ${turn} on an idle fleet`)
    // Paces learned as the home's ten times the others' (first tokens behind a starved event loop).
    for (const m of members) teach(m, 40, m === home ? 400 : 40, 0)
    home.beginPrefill(queuedOnHome)
    const r = request('s', 6, true)
    const next = b.pick(members, null, null, 1, r)!
    return { home, next, explanation: r.explanation! }
  }
  const greedy = run(0, 0)
  // 15 blocks, 14 on the home (its own history): home 10 x (1 + 1) = 20 against 1 x (15 + 1) elsewhere.
  assert.notEqual(greedy.next, greedy.home, 'without stickiness the estimate alone moves the turn')
  // With 0.5: 20 <= 16 + 0.5 x 14 blocks x 1 ms.
  const sticky = run(0.5, 0)
  assert.equal(sticky.next, sticky.home)
  assert.match(sticky.explanation, /; sticky=1$/)
  const queued = run(0.5, 40)
  assert.notEqual(queued.next, queued.home, '40 blocks queued on the home at 10 ms each: worse than the margin')
  assert.doesNotMatch(queued.explanation, /sticky/)
})

test('recent traffic decays with age on the given clock', () => {
  const [m] = makeMembers(1) as [Member<null>]
  for (let i = 0; i < 4; i++) m.notePlaced(1_000, 2_000)
  assert.equal(m.recentPlaced(1_000, 2_000), 4)
  assert.ok(Math.abs(m.recentPlaced(3_000, 2_000) - 4 / Math.E) < 1e-9, 'one decay time later: 1/e of it')
  m.notePlaced(3_000, 2_000)
  assert.ok(Math.abs(m.recentPlaced(3_000, 2_000) - (4 / Math.E + 1)) < 1e-9)
  assert.equal(m.recentPlaced(2_000, 2_000), m.placed, 'a clock read before the last update does not grow it')
})

test('placement: new conversations sharing a system prompt spread by recent traffic, later turns stay home', () => {
  const members = makeMembers(4)
  // Only the prefill estimate scores: it prefers the members holding the system prompt.
  const b = new InferenceAwareBalancer(cfg({ placement: { factor: 1.1 }, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  const homes = new Map<string, Member<null>>()
  for (let c = 0; c < 12; c++) homes.set(`c${c}`, b.pick(members, null, null, c, request(`c${c}`, 0))!)
  const perMember = members.map((m) => [...homes.values()].filter((h) => h === m).length)
  assert.deepEqual(perMember, [3, 3, 3, 3], 'each took its share of the twelve first turns')
  for (const [c, home] of homes) assert.equal(b.pick(members, null, null, 20, request(c, 1)), home, `${c}'s next turn returns to its member`)

  const off = new InferenceAwareBalancer(cfg({ placement: { factor: 0 }, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  const fresh = makeMembers(4)
  const first = new Set<string>()
  for (let c = 0; c < 12; c++) first.add(off.pick(fresh, null, null, c, request(`c${c}`, 0))!.name)
  assert.equal(first.size, 1, 'without placement the system prompt draws every first turn to one member')
})

test('placement: a member that prefills three times slower keeps some new conversations; the others take no more than the limit allows', () => {
  const members = makeMembers(4)
  for (const [i, ms] of [[0, 400], [1, 400], [2, 400], [3, 1200]] as const) {
    teach(members[i]!, 40, ms, 0)
  }
  const b = new InferenceAwareBalancer(cfg({ placement: { factor: 1.1 }, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
  const counts = [0, 0, 0, 0]
  // 40 conversations sharing nothing, all within the pace's memory (2 s) and the traffic's decay.
  for (let c = 0; c < 40; c++) {
    const r = new RouteRequest(null, prefixBlocks({ model: 'm', messages: [{ role: 'user', content: `${c} `.repeat(1100) }] }, 'm', 256, 256))
    counts[members.indexOf(b.pick(members, null, null, c * 10, r)!)]!++
  }
  // Capacities 1/1/1/(mean pace 15 / 30 = 0.5). The estimate prefers the fast members until each
  // is past 1.1 x the traffic per capacity; only then does the slow one get a turn. So it keeps a
  // share (the fast ones are not filled without bound), smaller than its capacity's 40 x 0.5 / 3.5.
  assert.ok(counts[3]! >= 1 && counts[3]! <= 5, `slow member's share: ${counts.join('/')}`)
  assert.ok(counts.slice(0, 3).every((n) => n <= Math.ceil((1.1 * 41) / 3.5) + 1), counts.join('/'))
  const off = new InferenceAwareBalancer(cfg({ weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 }, placement: { factor: 0 } }))
  let slow = 0
  for (let c = 0; c < 40; c++) {
    const r = new RouteRequest(null, prefixBlocks({ model: 'm', messages: [{ role: 'user', content: `${c} `.repeat(1100) }] }, 'm', 256, 256))
    if (off.pick(members, null, null, c * 10, r) === members[3]) slow++
  }
  assert.equal(slow, 0, 'without placement (and nothing queued) the estimate never picks the slow member')
})

test('pace memory: a pace is forgotten pace.memoryMs after its last sample', () => {
  const short = makeMember('short', routingConfig({ inferenceAware: { pace: { memoryMs: 2_000 } } }))
  const long = makeMember('long', routingConfig())
  for (const m of [short, long]) teach(m, 36, 400, 1_000)
  assert.equal(short.prefillPace(3_000), 10, '400 ms over 36 + 4 blocks (the default fixedBlocks)')
  assert.equal(short.prefillPace(3_001), 0)
  assert.equal(long.prefillPace(11_000), 10, 'the default: 10 s')
  assert.equal(long.prefillPace(11_001), 0)
})

test('pace tolerance: equal pods whose paces differ by noise compare on blocks; a pod clearly slower keeps its own pace', () => {
  const pace = { minBlocks: 0, fixedBlocks: 4 }
  const setup = (tolerance: number) => {
    const members = ['m0', 'm1', 'm2'].map((name) => makeMember(name, routingConfig({ inferenceAware: { pace } })))
    // m0 and m1 are equal pods, m1's pace a little high from noise; m2 is three times slower.
    for (const [i, ms] of [[0, 130], [1, 182], [2, 390]] as const) teach(members[i]!, 9, ms, 0)
    const b = new InferenceAwareBalancer(cfg({ pace: { ...pace, tolerance }, weights: { prefix: 0, queue: 0, kvCache: 0, load: 0, latency: 0 } }))
    return { members, b }
  }
  const turn = (tolerance: number): string => {
    const { members, b } = setup(tolerance)
    const r = request('s', 0)
    b.index.record(r.blocks!, members[1]!)
    // m1 holds the whole prompt (1 block + 4 fixed) with 6 blocks queued: 14 x 11 = 154 against a
    // cold m0's 10 x (9 + 4) = 130 as learned; with both snapped to 14, 154 against 182.
    members[1]!.beginPrefill(6)
    return b.pick(members, null, null, 1, new RouteRequest(null, r.blocks, false))!.name
  }
  assert.equal(request('s', 0).blocks!.length, 8)
  assert.equal(turn(1), 'm0', 'paces as learned: the noise moves the turn off the pod holding it')
  assert.equal(turn(1.5), 'm1', 'within 1.5x of each other: the warm pod keeps it')
  const { members, b } = setup(1.5)
  for (const m of members.slice(0, 2)) m.beginPrefill(40)
  const r = new RouteRequest(null, request('t', 0).blocks, true)
  assert.equal(b.pick(members, null, null, 1, r)!.name, 'm2')
  assert.match(r.explanation!, /ms_per_block=30\.00/, 'the slow pod is estimated with its own pace')
})

test('a first token delayed by the gateway\u2019s own event-loop stall: the stall is taken out of the sample, or the sample dropped', () => {
  const m = makeMember('m', routingConfig({ inferenceAware: { pace: { minBlocks: 0, fixedBlocks: 4 } } }))
  // 36 blocks of work + 4 fixed: 400 ms is 10 ms per block.
  for (let k = 0; k < 3; k++) m.endPrefill(0, 36, 400 + 300, 0, 300)
  assert.equal(m.prefillPace(0), 10, '700 ms of which 300 stalled: 400 ms of the pod')
  m.endPrefill(0, 36, 2_000, 1, 1_500)
  assert.equal(m.prefillPace(1), 10, 'a first token that waited mostly on the gateway teaches nothing')
})

test('creditSharedPrefix: the system prompt counts as held everywhere, so first turns spread by load; later turns stay home', () => {
  // Prefill and load score; without the credit, the system prompt draws every first turn to the
  // member that served it first, whatever its load (the load scorer weighs less than a few blocks).
  const weights = { prefix: 0, queue: 0, kvCache: 0, latency: 0 }
  const firstTurns = (credit: boolean): { members: Member<null>[]; b: InferenceAwareBalancer; homes: Map<string, Member<null>> } => {
    const members = makeMembers(4)
    const b = new InferenceAwareBalancer(cfg({ creditSharedPrefix: credit, weights, boundedLoad: 0 }))
    const homes = new Map<string, Member<null>>()
    for (let c = 0; c < 12; c++) {
      const m = b.pick(members, null, null, c, request(`c${c}`, 0))!
      m.onStart(c)
      homes.set(`c${c}`, m)
    }
    return { members, b, homes }
  }
  const off = firstTurns(false)
  assert.equal(new Set(off.homes.values()).size, 1, 'without the credit every first turn goes where the system prompt is')
  const on = firstTurns(true)
  const perMember = on.members.map((m) => [...on.homes.values()].filter((h) => h === m).length)
  assert.deepEqual(perMember, [3, 3, 3, 3], 'with it the twelve first turns spread by load')
  for (const m of on.homes.values()) m.onSuccess(20)
  for (const [c, home] of on.homes) assert.equal(on.b.pick(on.members, null, null, 30, request(c, 1)), home, `${c}'s next turn returns to its member`)
})
