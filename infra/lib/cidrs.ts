/**
 * Checks on the CIDRs that open the Kubernetes API: what may be listed as a public client range
 * (fixed egress addresses of CI runners or a VPN) and as a private one (runners inside or peered
 * with the VPC). Pure.
 */
import { parseCidr } from './subnets.ts'

interface Range { readonly cidr: string; readonly why: string }

/** RFC 5737 documentation ranges: placeholders in examples, never anyone's egress. */
export const DOCUMENTATION_RANGES: readonly Range[] = [
  { cidr: '192.0.2.0/24', why: 'TEST-NET-1' },
  { cidr: '198.51.100.0/24', why: 'TEST-NET-2' },
  { cidr: '203.0.113.0/24', why: 'TEST-NET-3' },
]

/** Ranges that only exist inside networks (RFC 1918, RFC 6598 shared space). */
export const PRIVATE_RANGES: readonly Range[] = [
  { cidr: '10.0.0.0/8', why: 'RFC 1918' },
  { cidr: '172.16.0.0/12', why: 'RFC 1918' },
  { cidr: '192.168.0.0/16', why: 'RFC 1918' },
  { cidr: '100.64.0.0/10', why: 'RFC 6598 shared address space' },
]

/** The widest public client range accepted: a /16 is already 65,536 addresses. */
export const WIDEST_PUBLIC_PREFIX = 16

function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a), y = parseCidr(b)
  const prefix = Math.min(x.prefix, y.prefix)
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0
  return ((x.base & mask) >>> 0) === ((y.base & mask) >>> 0)
}

function wellFormed(cidr: string): string | null {
  try { parseCidr(cidr); return null } catch (err) { return (err as Error).message }
}

/** Why `cidr` must not open the public API endpoint, or null. */
export function publicCidrProblem(cidr: string): string | null {
  const bad = wellFormed(cidr)
  if (bad) return bad
  const { prefix } = parseCidr(cidr)
  if (prefix === 0) return '0.0.0.0/0 opens the Kubernetes API to the whole internet; list your runners\' or VPN\'s egress addresses, or use the private endpoint'
  if (prefix < WIDEST_PUBLIC_PREFIX) return `${cidr} is broader than /${WIDEST_PUBLIC_PREFIX}; list the egress addresses you own`
  const doc = DOCUMENTATION_RANGES.find((r) => overlaps(cidr, r.cidr))
  if (doc) return `${cidr} is a documentation range (${doc.why}, ${doc.cidr}), a placeholder rather than anyone's egress address; replace it with your CI runners' or VPN's egress CIDR`
  const priv = PRIVATE_RANGES.find((r) => overlaps(cidr, r.cidr))
  if (priv) return `${cidr} is a private range (${priv.why}); private clients reach the private endpoint: list it in velox:clusterEndpointPrivateCidrs`
  return null
}

/** Why `cidr` cannot be a private API client range, or null. */
export function privateCidrProblem(cidr: string): string | null {
  const bad = wellFormed(cidr)
  if (bad) return bad
  const inside = PRIVATE_RANGES.find((r) => overlaps(cidr, r.cidr) && parseCidr(cidr).prefix >= parseCidr(r.cidr).prefix)
  if (!inside) return `${cidr} is not inside a private range (${PRIVATE_RANGES.map((r) => r.cidr).join(', ')}); public clients belong in velox:clusterEndpointPublicCidrs`
  return null
}
