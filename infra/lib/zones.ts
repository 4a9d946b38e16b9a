/**
 * Availability-zone planning: which AZs a region stack uses (every one must offer every node
 * instance type, checked against EC2's per-AZ offerings) and how node counts split across them.
 * Pure.
 */

export interface Offering { readonly instanceType: string; readonly zone: string }

/** Zones (in `available` order) offering every type in `types`. */
export function zonesOffering(available: readonly string[], offerings: readonly Offering[], types: readonly string[]): string[] {
  return available.filter((z) => types.every((t) => offerings.some((o) => o.zone === z && o.instanceType === t)))
}

function offeredIn(offerings: readonly Offering[], type: string, zones: readonly string[]): string {
  const where = zones.filter((z) => offerings.some((o) => o.zone === z && o.instanceType === type))
  return `${type}: ${where.length > 0 ? where.join(', ') : 'no AZ'}`
}

/**
 * The first `count` available AZs that offer every type; throws naming, per type, the AZs that
 * offer it, so the operator can change a type or the AZ count.
 */
export function pickZones(region: string, available: readonly string[], offerings: readonly Offering[], types: readonly string[], count: number): string[] {
  const usable = zonesOffering(available, offerings, types)
  if (usable.length < count) {
    throw new Error(`${region}: ${count} AZs must offer ${types.join(' and ')}, but only ${usable.length} do (${usable.join(', ') || 'none'}); offered in ${types.map((t) => offeredIn(offerings, t, available)).join('; ')}. Pick other instance types or lower velox:vpc.azCount`)
  }
  return usable.slice(0, count)
}

/** Checks the AZs of an existing VPC's subnets; throws like pickZones. */
export function checkZones(region: string, zones: readonly string[], offerings: readonly Offering[], types: readonly string[]): void {
  const missing = zones.flatMap((z) => types.filter((t) => !offerings.some((o) => o.zone === z && o.instanceType === t)).map((t) => `${t} in ${z}`))
  if (missing.length > 0) {
    throw new Error(`${region}: the existing VPC's private subnets are in AZs where EC2 does not offer ${missing.join(', ')}; offered in ${types.map((t) => offeredIn(offerings, t, [...new Set(offerings.map((o) => o.zone))].sort())).join('; ')}`)
  }
}

export interface NodeCounts { readonly min: number; readonly desired: number; readonly max: number }

function spread(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0)
}

/**
 * Splits a node group's counts over `zones` AZs, remainders to the first AZs: min and desired sum
 * to the totals; each AZ's max is the total max spread the same way, and never below 1 or the
 * AZ's desired count, so every AZ can grow (the cluster's max is then at most `zones - 1` higher).
 */
export function splitNodes(n: NodeCounts, zones: number): NodeCounts[] {
  if (zones < 1) throw new Error('at least one AZ')
  return Array.from({ length: zones }, (_, i) => {
    const min = spread(n.min, zones, i), desired = spread(n.desired, zones, i)
    return { min, desired, max: Math.max(1, desired, spread(n.max, zones, i)) }
  })
}
