/**
 * The instance types the platform knows, with the facts the program must check before it declares
 * anything: CPU architecture (it decides the EKS AMI type and must match the gateway image), ENA,
 * ENA Express (SRD) support, network optimisation and GPUs.
 *
 * The ENA Express column is deliberately conservative: a type is marked only where AWS lists it as
 * supported. Verify or extend with
 * `aws ec2 describe-instance-types --filters Name=network-info.ena-srd-supported,Values=true`.
 */

export type Arch = 'x86_64' | 'arm64'

export interface InstanceTypeInfo {
  readonly name: string
  readonly arch: Arch
  readonly vcpus: number
  /** Elastic Network Adapter (SR-IOV) networking. */
  readonly ena: boolean
  /** ENA Express (Scalable Reliable Datagram) on the primary interface. */
  readonly enaExpress: boolean
  /** A network-optimised family ("n" suffix): higher packet rate and bandwidth per vCPU. */
  readonly networkOptimized: boolean
  /** Baseline network bandwidth in Gbit/s (burst "up to" figures are not used). */
  readonly networkGbps: number
  /** Number of NVIDIA GPUs; 0 for CPU-only types. */
  readonly gpus: number
  /** Whether EC2 allows the type in a cluster placement group. */
  readonly clusterPlacement: boolean
}

type Row = [name: string, arch: Arch, vcpus: number, ena: boolean, enaExpress: boolean, networkOptimized: boolean, gbps: number, gpus: number, clusterPlacement: boolean]

const ROWS: readonly Row[] = [
  // Graviton network-optimised (the default gateway family).
  ['c7gn.medium', 'arm64', 1, true, false, true, 3.125, 0, true],
  ['c7gn.large', 'arm64', 2, true, false, true, 6.25, 0, true],
  ['c7gn.xlarge', 'arm64', 4, true, false, true, 12.5, 0, true],
  ['c7gn.2xlarge', 'arm64', 8, true, false, true, 25, 0, true],
  ['c7gn.4xlarge', 'arm64', 16, true, false, true, 50, 0, true],
  ['c7gn.8xlarge', 'arm64', 32, true, false, true, 100, 0, true],
  ['c7gn.12xlarge', 'arm64', 48, true, false, true, 150, 0, true],
  ['c7gn.16xlarge', 'arm64', 64, true, true, true, 200, 0, true],
  ['c7gn.metal', 'arm64', 64, true, true, true, 200, 0, true],
  ['c6gn.medium', 'arm64', 1, true, false, true, 1.6, 0, true],
  ['c6gn.large', 'arm64', 2, true, false, true, 3, 0, true],
  ['c6gn.xlarge', 'arm64', 4, true, false, true, 6.3, 0, true],
  ['c6gn.2xlarge', 'arm64', 8, true, false, true, 12.5, 0, true],
  ['c6gn.4xlarge', 'arm64', 16, true, false, true, 25, 0, true],
  ['c6gn.8xlarge', 'arm64', 32, true, false, true, 50, 0, true],
  ['c6gn.16xlarge', 'arm64', 64, true, true, true, 100, 0, true],
  // x86 network-optimised.
  ['c6in.large', 'x86_64', 2, true, false, true, 3.125, 0, true],
  ['c6in.xlarge', 'x86_64', 4, true, false, true, 6.25, 0, true],
  ['c6in.2xlarge', 'x86_64', 8, true, false, true, 12.5, 0, true],
  ['c6in.4xlarge', 'x86_64', 16, true, false, true, 25, 0, true],
  ['c6in.8xlarge', 'x86_64', 32, true, false, true, 50, 0, true],
  ['c6in.12xlarge', 'x86_64', 48, true, false, true, 75, 0, true],
  ['c6in.16xlarge', 'x86_64', 64, true, false, true, 100, 0, true],
  ['c6in.24xlarge', 'x86_64', 96, true, false, true, 150, 0, true],
  ['c6in.32xlarge', 'x86_64', 128, true, true, true, 200, 0, true],
  ['c6in.metal', 'x86_64', 128, true, true, true, 200, 0, true],
  // ENA-capable but not network-optimised: known, refused for gateway nodes with a clear reason.
  ['c7g.large', 'arm64', 2, true, false, false, 0.937, 0, true],
  ['c7g.xlarge', 'arm64', 4, true, false, false, 1.876, 0, true],
  ['c6i.large', 'x86_64', 2, true, false, false, 0.781, 0, true],
  ['c6i.xlarge', 'x86_64', 4, true, false, false, 1.562, 0, true],
  ['m7g.large', 'arm64', 2, true, false, false, 0.937, 0, true],
  ['m6i.large', 'x86_64', 2, true, false, false, 0.781, 0, true],
  // Without ENA: refused for every node group.
  ['t2.micro', 'x86_64', 1, false, false, false, 0.1, 0, false],
  ['t2.medium', 'x86_64', 2, false, false, false, 0.3, 0, false],
  ['c4.large', 'x86_64', 2, false, false, false, 0.5, 0, true],
  ['c4.xlarge', 'x86_64', 4, false, false, false, 0.75, 0, true],
  ['m4.large', 'x86_64', 2, false, false, false, 0.45, 0, true],
  // NVIDIA GPU types for vLLM (all x86_64, served by the AL2023_x86_64_NVIDIA AMI).
  ['g6.xlarge', 'x86_64', 4, true, false, false, 2.5, 1, true],
  ['g6.12xlarge', 'x86_64', 48, true, false, false, 40, 4, true],
  ['g6e.xlarge', 'x86_64', 4, true, false, false, 2.5, 1, true],
  ['g6e.2xlarge', 'x86_64', 8, true, false, false, 5, 1, true],
  ['g6e.4xlarge', 'x86_64', 16, true, false, false, 10, 1, true],
  ['g6e.8xlarge', 'x86_64', 32, true, false, false, 25, 1, true],
  ['g6e.12xlarge', 'x86_64', 48, true, false, false, 100, 4, true],
  ['g6e.24xlarge', 'x86_64', 96, true, false, false, 200, 4, true],
  ['g6e.48xlarge', 'x86_64', 192, true, false, false, 400, 8, true],
  ['p5.48xlarge', 'x86_64', 192, true, true, false, 3200, 8, true],
  ['p5e.48xlarge', 'x86_64', 192, true, true, false, 3200, 8, true],
]

export const INSTANCE_TYPES: ReadonlyMap<string, InstanceTypeInfo> = new Map(
  ROWS.map(([name, arch, vcpus, ena, enaExpress, networkOptimized, networkGbps, gpus, clusterPlacement]) => [
    name,
    Object.freeze({ name, arch, vcpus, ena, enaExpress, networkOptimized, networkGbps, gpus, clusterPlacement }),
  ]),
)

export function instanceType(name: string): InstanceTypeInfo | undefined {
  return INSTANCE_TYPES.get(name)
}

/** Types accepted for gateway nodes: ENA, network-optimised, cluster-placeable, no GPU. */
export const GATEWAY_INSTANCE_TYPES: readonly string[] = [...INSTANCE_TYPES.values()]
  .filter((t) => t.ena && t.networkOptimized && t.clusterPlacement && t.gpus === 0)
  .map((t) => t.name)

/** Types accepted for inference nodes: NVIDIA GPUs with ENA. */
export const INFERENCE_INSTANCE_TYPES: readonly string[] = [...INSTANCE_TYPES.values()]
  .filter((t) => t.ena && t.gpus > 0 && t.clusterPlacement)
  .map((t) => t.name)

/** Why a type cannot carry gateway nodes, or null when it can. */
export function gatewayInstanceProblem(name: string): string | null {
  const t = INSTANCE_TYPES.get(name)
  if (!t) return `unknown instance type "${name}"`
  if (!t.ena) return `"${name}" is not ENA-capable (no SR-IOV networking)`
  if (t.gpus > 0) return `"${name}" is a GPU type; gateway nodes are CPU-only`
  if (!t.networkOptimized) return `"${name}" is ENA-capable but not network-optimised (use a c7gn/c6gn/c6in size)`
  if (!t.clusterPlacement) return `"${name}" cannot be placed in a cluster placement group`
  return null
}

/** Why a type cannot carry inference nodes, or null when it can. */
export function inferenceInstanceProblem(name: string): string | null {
  const t = INSTANCE_TYPES.get(name)
  if (!t) return `unknown instance type "${name}"`
  if (t.gpus === 0) return `"${name}" has no GPU`
  if (!t.ena) return `"${name}" is not ENA-capable`
  return null
}

/** EKS managed node group AMI types, per role and architecture. */
export type AmiType = 'AL2023_x86_64_STANDARD' | 'AL2023_ARM_64_STANDARD' | 'AL2023_x86_64_NVIDIA'

export function gatewayAmiType(arch: Arch): AmiType {
  return arch === 'arm64' ? 'AL2023_ARM_64_STANDARD' : 'AL2023_x86_64_STANDARD'
}

export const INFERENCE_AMI_TYPE: AmiType = 'AL2023_x86_64_NVIDIA'

/** The container image platform an architecture runs. */
export function platformOf(arch: Arch): 'linux/amd64' | 'linux/arm64' {
  return arch === 'arm64' ? 'linux/arm64' : 'linux/amd64'
}

/** The architecture an AMI type boots, for the cross-check between node group and instance type. */
export function amiArch(ami: AmiType): Arch {
  return ami === 'AL2023_ARM_64_STANDARD' ? 'arm64' : 'x86_64'
}

/** ElastiCache node types accepted for the cache tier (Valkey-capable, current generation). */
export const CACHE_NODE_TYPES: readonly string[] = [
  'cache.t4g.micro', 'cache.t4g.small', 'cache.t4g.medium',
  'cache.m7g.large', 'cache.m7g.xlarge', 'cache.m7g.2xlarge',
  'cache.r7g.large', 'cache.r7g.xlarge', 'cache.r7g.2xlarge', 'cache.r7g.4xlarge',
]

/**
 * Whether ENA Express can do anything for this pair. Its only effect is on TCP (and opt-in UDP)
 * flows between two instances in the same subnet that both have it enabled: it sends them over
 * AWS SRD (multipath, faster retransmit), raising single-flow bandwidth from 5 to 25 Gbit/s and
 * cutting the tail latency of loss. The gateway's only such peer is vLLM on the inference nodes of
 * its AZ (client traffic arrives through the NLB; Valkey is a managed service), so it is enabled
 * on both or on neither.
 */
export function enaExpressApplies(gatewayType: string, inferenceType: string): boolean {
  return (instanceType(gatewayType)?.enaExpress ?? false) && (instanceType(inferenceType)?.enaExpress ?? false)
}
