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

export function describeMember(member: Member<Upstream>, now: number): MemberState {
  const s = member.upstream.stats()
  return {
    name: member.name,
    upstream: member.upstreamName,
    origin: member.origin,
    available: member.available(now),
    healthy: member.healthy,
    draining: member.draining,
    breaker: {
      state: BREAKER_NAMES[member.breaker.state] ?? 'closed',
      ejections: member.breaker.ejections,
      ejectedForMs: member.breaker.state === BreakerState.OPEN ? Math.max(0, Math.round(member.breaker.openUntil - now)) : 0,
    },
    ewmaMs: Math.round(member.ewma.get(now) * 1000) / 1000,
    outstanding: member.inFlight,
    started: member.started,
    failed: member.failed,
    lastFailure: member.lastFailure,
    pool: { connected: s.connected, free: s.free, busy: s.running, pending: s.pending },
  }
}

/**
 * Ejects a member for `ms`, as outlier detection would: its breaker opens, and when the time is
 * up one probe request decides whether it closes again.
 */
export function ejectMember(member: Member<Upstream>, ms: number, now: number): void {
  const b = member.breaker
  b.state = BreakerState.OPEN
  b.openUntil = now + ms
  b.consecutiveFailures = 0
}
