/**
 * Micro-benchmark of Balancer.pick: ns per call with 1 and 16 members for every balancer, and of a
 * full attempt's bookkeeping (pick, onStart, onFirstByte, onSuccess). Run:
 *   npx node gateway/benchmarks/micro/pick.ts
 */
import { createBalancer } from '../../src/routing/balancer.ts'
import { BALANCER_KINDS, RoutingConfigSchema } from '../../src/routing/config.ts'
import { Member } from '../../src/routing/member.ts'
import { seededRandom } from '../../src/routing/rng.ts'

const ITERATIONS = 2_000_000
const cfg = RoutingConfigSchema.parse({})
const keys = Array.from({ length: 1024 }, (_, i) => `user-${i * 7919}`)

function members(n: number): Member<null>[] {
  const rng = seededRandom(n)
  return Array.from({ length: n }, (_, i) => {
    const m = new Member(
      { name: `m${i}`, upstreamName: `m${i}`, origin: `http://10.0.0.${i}:8000`, basePath: '', host: `10.0.0.${i}:8000`, weight: 1 + (i % 3), priority: 0, ewmaDecayMs: cfg.ewmaDecayMs, outlier: cfg.outlier },
      null,
    )
    m.onStart(0)
    m.onFirstByte(10 + rng() * 90, 0)
    m.onSuccess(0)
    for (let k = Math.floor(rng() * 4); k > 0; k--) m.onStart(0)
    return m
  })
}

let sink = 0

function bench(label: string, body: (i: number) => void): number {
  for (let i = 0; i < ITERATIONS / 10; i++) body(i)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ITERATIONS; i++) body(i)
  const ns = Number(process.hrtime.bigint() - t0) / ITERATIONS
  console.log(`${label.padEnd(48)} ${ns.toFixed(1).padStart(7)} ns/op`)
  return ns
}

const results: Record<string, number> = {}
for (const kind of BALANCER_KINDS) {
  for (const n of [1, 16]) {
    const list = members(n)
    const balancer = createBalancer(kind, { random: seededRandom(1) })
    results[`${kind} x${n}`] = bench(`pick ${kind}, ${n} member${n === 1 ? '' : 's'}`, (i) => {
      const m = balancer.pick(list, keys[i & 1023]!, null, 1 + i * 1e-4)
      sink += m === null ? 0 : m.weight
    })
  }
}
{
  const list = members(16)
  const balancer = createBalancer('p2c-peak-ewma', { random: seededRandom(1) })
  bench('attempt bookkeeping p2c-peak-ewma, 16 members', (i) => {
    const now = 1 + i * 1e-4
    const m = balancer.pick(list, null, null, now)!
    m.onStart(now)
    m.onFirstByte(20 + (i & 63), now)
    m.onSuccess(now)
  })
}
if (sink === -1) console.log(sink)
const worst = Math.max(...Object.values(results))
console.log(`slowest pick: ${worst.toFixed(1)} ns/op (${worst < 1_000 ? 'under' : 'OVER'} 1 microsecond)`)
