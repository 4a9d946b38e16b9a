import { RoutingConfigSchema, type RoutingConfig, type RoutingConfigInput } from '../../../gateway/src/routing/config.ts'
import { Member } from '../../../gateway/src/routing/member.ts'

export function routingConfig(input: RoutingConfigInput = {}): RoutingConfig {
  return RoutingConfigSchema.parse(input)
}

export interface TestMemberSpec {
  name: string
  weight?: number
  priority?: number
}

export function makeMember(spec: TestMemberSpec | string, cfg: RoutingConfig = routingConfig()): Member<null> {
  const s = typeof spec === 'string' ? { name: spec } : spec
  return new Member(
    {
      name: s.name,
      upstreamName: s.name,
      origin: `http://${s.name}.test:8000`,
      basePath: '',
      host: `${s.name}.test:8000`,
      weight: s.weight ?? 1,
      priority: s.priority ?? 0,
      ewmaDecayMs: cfg.ewmaDecayMs,
      outlier: cfg.outlier,
      pace: cfg.inferenceAware.pace,
    },
    null,
  )
}

export function makeMembers(n: number, prefix = 'm'): Member<null>[] {
  return Array.from({ length: n }, (_, i) => makeMember(`${prefix}${i}`))
}

/** Opens a member's breaker by reporting consecutive failures. */
export function eject<D>(member: Member<D>, nowMs: number): void {
  for (let i = 0; i < member.breaker.failureThreshold; i++) {
    member.onStart(nowMs)
    member.onFailure('5xx', nowMs)
  }
}

export function countPicks(pick: () => Member<null> | null, n: number): Map<string, number> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const m = pick()
    const k = m === null ? 'null' : m.name
    counts.set(k, (counts.get(k) ?? 0) + 1)
  }
  return counts
}

export interface SimulationOptions {
  readonly requests: number
  /** Time between arrivals (ms). */
  readonly intervalMs: number
  /** Time to first byte for a request sent to `member`. */
  readonly latencyOf: (member: Member<null>) => number
  readonly key?: (i: number) => string | null
}

/**
 * Open-loop traffic in virtual time: a request arrives every intervalMs, goes where the balancer
 * says, and completes latencyOf(member) later, reporting its latency as the request path would.
 */
export function simulate(
  pick: (members: readonly Member<null>[], key: string | null, nowMs: number) => Member<null> | null,
  members: readonly Member<null>[],
  opts: SimulationOptions,
): Map<string, number> {
  const counts = new Map<string, number>(members.map((m) => [m.name, 0]))
  let inFlight: { member: Member<null>; doneAt: number; latency: number }[] = []
  for (let i = 0; i < opts.requests; i++) {
    const now = i * opts.intervalMs
    const finished = inFlight.filter((r) => r.doneAt <= now).sort((a, b) => a.doneAt - b.doneAt)
    for (const r of finished) {
      r.member.onFirstByte(r.latency, r.doneAt)
      r.member.onSuccess(r.doneAt)
    }
    if (finished.length > 0) inFlight = inFlight.filter((r) => r.doneAt > now)
    const m = pick(members, opts.key?.(i) ?? null, now)
    if (m === null) continue
    m.onStart(now)
    counts.set(m.name, counts.get(m.name)! + 1)
    const latency = opts.latencyOf(m)
    inFlight.push({ member: m, doneAt: now + latency, latency })
  }
  return counts
}
