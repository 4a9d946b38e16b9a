/**
 * Subnet planning for a new VPC: pure IPv4 arithmetic, no resources. Private subnets are large
 * (/19 in a /16) because the VPC CNI gives every pod a VPC address; public subnets only hold the
 * load balancer and NAT gateways, so /24 is plenty.
 */

export interface SubnetPlan {
  readonly az: number
  readonly privateCidr: string
  readonly publicCidr: string
}

function toInt(ip: string): number {
  const parts = ip.split('.').map(Number)
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`bad IPv4 address "${ip}"`)
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0
}

function toIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

export function parseCidr(cidr: string): { base: number; prefix: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr)
  if (!m) throw new Error(`bad CIDR "${cidr}"`)
  const prefix = Number(m[2])
  if (prefix < 0 || prefix > 32) throw new Error(`bad CIDR prefix in "${cidr}"`)
  const base = toInt(m[1]!)
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0
  if ((base & mask) >>> 0 !== base) throw new Error(`CIDR "${cidr}" has host bits set`)
  return { base, prefix }
}

/** The i-th subnet of size `/newPrefix` inside `cidr`. */
export function subnetAt(cidr: string, newPrefix: number, index: number): string {
  const { base, prefix } = parseCidr(cidr)
  if (newPrefix < prefix) throw new Error(`/${newPrefix} does not fit in ${cidr}`)
  const count = 2 ** (newPrefix - prefix)
  if (index < 0 || index >= count) throw new Error(`subnet ${index} of /${newPrefix} is outside ${cidr}`)
  return `${toIp((base + index * 2 ** (32 - newPrefix)) >>> 0)}/${newPrefix}`
}

/**
 * Per-AZ private and public subnets: private ones take the first slots at prefix+3 (8 x /19 in a
 * /16), public ones come from the last of those slots, cut into prefix+8 pieces (/24).
 */
export function planSubnets(vpcCidr: string, azCount: number): SubnetPlan[] {
  const { prefix } = parseCidr(vpcCidr)
  if (prefix > 20) throw new Error(`VPC CIDR ${vpcCidr} is too small; use /20 or larger (a /16 is typical)`)
  if (azCount < 2 || azCount > 6) throw new Error(`azCount must be between 2 and 6, got ${azCount}`)
  const privatePrefix = prefix + 3
  const lastSlot = subnetAt(vpcCidr, privatePrefix, 7)
  return Array.from({ length: azCount }, (_, az) => ({
    az,
    privateCidr: subnetAt(vpcCidr, privatePrefix, az),
    publicCidr: subnetAt(lastSlot, prefix + 8, az),
  }))
}
