/** Routing members as an operator sees them, and the two actions on them: drain and eject. */
import { BreakerState } from '../routing/breaker.ts'
import type { Member } from '../routing/member.ts'
import type { Upstream } from '../upstream/upstream.ts'

const BREAKER_NAMES = ['closed', 'open', 'half-open'] as const

export interface MemberState {
  name: string
  upstream: string
  origin: string
  available: boolean
  healthy: boolean
  draining: boolean
  breaker: { state: (typeof BREAKER_NAMES)[number]; ejections: number; ejectedForMs: number }
  ewmaMs: number
  outstanding: number
  started: number
  failed: number
  lastFailure: string | null
  pool: { connected: number; free: number; busy: number; pending: number }
}

export function describeMember(m: Member<Upstream>, now: number): MemberState {
  const s = m.upstream.stats()
  return {
    name: m.name,
    upstream: m.upstreamName,
    origin: m.origin,
    available: m.available(now),
    healthy: m.healthy,
    draining: m.draining,
    breaker: {
      state: BREAKER_NAMES[m.breaker.state] ?? 'closed',
      ejections: m.breaker.ejections,
      ejectedForMs: m.breaker.state === BreakerState.OPEN ? Math.max(0, Math.round(m.breaker.openUntil - now)) : 0,
    },
    ewmaMs: Math.round(m.ewma.get(now) * 1000) / 1000,
    outstanding: m.inFlight,
    started: m.started,
    failed: m.failed,
    lastFailure: m.lastFailure,
    pool: { connected: s.connected, free: s.free, busy: s.running, pending: s.pending },
  }
}

/**
 * Ejects a member for `ms`, as outlier detection would: its breaker opens, and when the time is
 * up one probe request decides whether it closes again.
 */
export function ejectMember(m: Member<Upstream>, ms: number, now: number): void {
  const b = m.breaker
  b.state = BreakerState.OPEN
  b.openUntil = now + ms
  b.consecutiveFailures = 0
}
