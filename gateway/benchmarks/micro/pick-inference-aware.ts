/**
 * Micro-benchmark of the inference-aware routing decision with 64 members: hashing the prompt
 * prefix of a chat body, and one pick (filters, six scorers, picker, index update) with fresh
 * pod metrics, a learned prefill pace and pending prefill on every member and a warm prefix index (10,000 conversations recorded). Compared
 * with P2C on the same members. Prints per-call p50/p99/mean from individually timed calls.
 *
 *   npx node gateway/benchmarks/micro/pick-inference-aware.ts [--quick]
 */
import { createBalancer } from '../../src/routing/balancer.ts'
import { RoutingConfigSchema } from '../../src/routing/config.ts'
import { Member } from '../../src/routing/member.ts'
import { WARMUP_SAMPLES } from '../../src/routing/prefill-pace.ts'
import { prefixBlocks } from '../../src/routing/prefix-hash.ts'
import { RouteRequest } from '../../src/routing/route-request.ts'
import { seededRandom } from '../../src/routing/rng.ts'

const quick = process.argv.includes('--quick')
const CALLS = quick ? 50_000 : 200_000
const MEMBERS = 64
const cfg = RoutingConfigSchema.parse({ balancer: 'inference-aware' })
const ia = cfg.inferenceAware
const rng = seededRandom(42)

const members = Array.from({ length: MEMBERS }, (_, i) => {
  const m = new Member({ name: `pod${i}`, upstreamName: `pod${i}`, origin: `http://10.0.${i >> 8}.${i & 255}:8000`, basePath: '', host: `10.0.0.${i}:8000`, weight: 1, priority: 0, ewmaDecayMs: cfg.ewmaDecayMs, outlier: cfg.outlier }, null)
  m.onStart(0)
  m.onFirstByte(50 + rng() * 200, 0)
  m.onSuccess(0)
  return m
})

const words = 'the gateway routes every request to a healthy upstream and streams tokens back with low latency'.split(' ')
const text = (chars: number, seed: number): string => {
  const r = seededRandom(seed)
  let s = ''
  while (s.length < chars) s += words[Math.floor(r() * words.length)] + ' '
  return s
}
const systems = Array.from({ length: 8 }, (_, i) => text(6000, i))
/** A 10-turn conversation: ~6 KB system prompt plus ~600 chars per turn (about 12 KB). */
function body(session: number, turns: number): Record<string, unknown> {
  const messages = [{ role: 'system', content: systems[session % 8]! }]
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: text(400, session * 100 + t) })
    if (t < turns - 1) messages.push({ role: 'assistant', content: text(200, session * 100 + t + 50) })
  }
  return { model: 'llm', messages, stream: true }
}
const bodies = Array.from({ length: 256 }, (_, i) => body(i, 1 + (i % 10)))
const requests = bodies.map((b) => new RouteRequest(null, prefixBlocks(b, 'llm', ia.prefix.blockChars, ia.prefix.maxBlocks)))

function timed(label: string, calls: number, fn: (i: number) => void): { p50: number; p99: number; mean: number } {
  for (let i = 0; i < calls / 5; i++) fn(i)
  const samples = new Float64Array(calls)
  let total = 0
  for (let i = 0; i < calls; i++) {
    const t0 = process.hrtime.bigint()
    fn(i)
    const ns = Number(process.hrtime.bigint() - t0)
    samples[i] = ns
    total += ns
  }
  samples.sort()
  const r = { p50: samples[Math.floor(calls * 0.5)]!, p99: samples[Math.floor(calls * 0.99)]!, mean: total / calls }
  console.log(`${label.padEnd(58)} p50 ${(r.p50 / 1000).toFixed(2).padStart(6)} us  p99 ${(r.p99 / 1000).toFixed(2).padStart(6)} us  mean ${(r.mean / 1000).toFixed(2).padStart(6)} us`)
  return r
}

let sink = 0
const now = 1_000
for (const m of members) {
  m.pod.update({ running: Math.floor(rng() * 16), waiting: Math.floor(rng() * 3), kvUsage: rng() }, m.inFlight, now)
  // A learned prefill pace and some prefill still pending on every member, so the prefill scorer does its whole work.
  const work = m.beginPrefill(40)
  const ms = 80 + rng() * 160
  m.endPrefill(40, work, ms, now)
  for (let k = 1; k < WARMUP_SAMPLES; k++) m.endPrefill(0, work, ms, now)
  m.beginPrefill(Math.floor(rng() * 60))
}

const inference = createBalancer('inference-aware', { inferenceAware: ia })
// Warm the index with 10,000 conversations' prefixes spread over the members.
for (let s = 0; s < 10_000; s++) {
  const r = new RouteRequest(null, prefixBlocks(body(s, 1 + (s % 10)), 'llm', ia.prefix.blockChars, ia.prefix.maxBlocks))
  inference.pick(members, null, null, now, r)
}

// Calibration: a bare FNV loop over 10,000 characters, so numbers from a busy machine can be read
// as multiples of what the CPU does for the simplest possible loop right now.
const plain = 'abcdefghij'.repeat(1000)
const calibration = timed('calibration: bare FNV loop over 10,000 chars', Math.floor(CALLS / 10), () => {
  let h = 0x811c9dc5
  for (let i = 0; i < plain.length; i++) h = Math.imul(h ^ plain.charCodeAt(i), 0x01000193)
  sink += h & 1
})
const hash = timed('prefix hashing, ~1-12 KB chat body', CALLS, (i) => {
  const b = prefixBlocks(bodies[i & 255]!, 'llm', ia.prefix.blockChars, ia.prefix.maxBlocks)
  sink += b === null ? 0 : b.length
})
const pick = timed(`inference-aware pick, ${MEMBERS} members, warm index`, CALLS, (i) => {
  const m = inference.pick(members, null, null, now + (i & 1023) * 0.1, requests[i & 255]!)
  sink += m === null ? 0 : m.weight
})
const explained = requests.map((r) => new RouteRequest(null, r.blocks, true))
timed(`inference-aware pick with explain, ${MEMBERS} members`, Math.floor(CALLS / 4), (i) => {
  const m = inference.pick(members, null, null, now, explained[i & 255]!)
  sink += m === null ? 0 : m.weight
})
const p2c = createBalancer('p2c-peak-ewma', { random: seededRandom(1) })
timed(`p2c-peak-ewma pick, ${MEMBERS} members (reference)`, CALLS, (i) => {
  const m = p2c.pick(members, null, null, now + (i & 1023) * 0.1)
  sink += m === null ? 0 : m.weight
})
if (sink === -1) console.log(sink)
const decisionP99 = (hash.p99 + pick.p99) / 1000
console.log(`routing decision (hash + pick) p99: ${decisionP99.toFixed(1)} us; the one-at-a-time budget for everything the gateway adds is 100-150 us of p99`)
console.log(`calibration loop p50 ${(calibration.p50 / 10_000).toFixed(2)} ns/char (about 1 ns/char on an idle machine; scale the numbers above accordingly)`)
