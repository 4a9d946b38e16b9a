import * as pulumi from '@pulumi/pulumi'
import { INFERENCE_AMI_TYPE, inferenceInstanceProblem, instanceType } from '../lib/instance-types.ts'
import { gatewayTuning, nodeUserData, tuningScript } from '../lib/user-data.ts'
import { splitNodes } from '../lib/zones.ts'
import type { ZoneSubnet } from './gateway-nodes.ts'
import { declareNodePool } from './shared/node-pool.ts'

export const INFERENCE_NODE_LABEL = { 'velox.dev/role': 'inference' } as const
/** The semantic cache's GPU nodes (embedding model and reranker), apart from the ones vLLM fills. */
export const SEMANTIC_NODE_LABEL = { 'velox.dev/role': 'semantic' } as const
/** The taint the NVIDIA AMI's GPUs are guarded by; only GPU workloads tolerate it. */
export const GPU_TAINT = { key: 'nvidia.com/gpu', value: 'present', effect: 'NO_SCHEDULE' } as const

export interface InferenceNodesArgs {
  readonly clusterName: pulumi.Input<string>
  readonly kubernetesVersion: string
  readonly nodeRoleArn: pulumi.Input<string>
  readonly securityGroupIds: pulumi.Input<string>[]
  /** The gateway nodes' AZs and subnets: gateway -> vLLM stays inside an AZ. */
  readonly zones: readonly ZoneSubnet[]
  /** g6e/p5 class. */
  readonly instanceType: string
  /** Totals over every AZ, split like the gateway nodes. */
  readonly nodes: { readonly min: number; readonly desired: number; readonly max: number }
  /** ENA Express (same-subnet TCP to the gateways), decided together with the gateway type. */
  readonly enaExpress: boolean
  /** Node labels; default INFERENCE_NODE_LABEL (the semantic node group passes SEMANTIC_NODE_LABEL). */
  readonly labels?: Readonly<Record<string, string>>
  /** Root volume (GiB), which holds the model cache; default 300, room for a 70B checkpoint. */
  readonly rootVolumeGiB?: number
}

/**
 * GPU nodes for vLLM on the NVIDIA AL2023 AMI, tainted, one node group per gateway AZ in the
 * gateways' subnet. Not in the gateways' cluster placement group: EC2 advises one instance type
 * per cluster placement group, GPU capacity is the scarce kind (a packed launch fails with
 * InsufficientInstanceCapacity first), and one same-AZ hop per request is microseconds against
 * the milliseconds a token takes.
 */
export class InferenceNodes extends pulumi.ComponentResource {
  readonly nodeGroupNames: pulumi.Output<string>[]
  readonly launchTemplateIds: pulumi.Output<string>[]
  /** GPUs per node: vLLM's tensor parallel size. */
  readonly gpusPerNode: number

  constructor(name: string, args: InferenceNodesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:nodes:InferenceNodes', name, {}, opts)
    const problem = inferenceInstanceProblem(args.instanceType)
    const info = instanceType(args.instanceType)
    if (problem || !info) throw new Error(`inference nodes: ${problem ?? 'unknown instance type'}`)
    if (args.enaExpress && !info.enaExpress) throw new Error(`inference nodes: "${args.instanceType}" does not support ENA Express`)

    const counts = splitNodes(args.nodes, args.zones.length)
    // vLLM's HTTP server benefits from the same backlog and buffer settings; no busy polling
    // on GPU hosts, whose CPUs feed the GPUs.
    const userData = nodeUserData(tuningScript(gatewayTuning(0)))
    const pools = args.zones.map((z, i) => declareNodePool(this, `${name}-${i}`, {
      clusterName: args.clusterName,
      nodeRoleArn: args.nodeRoleArn,
      securityGroupIds: args.securityGroupIds,
      subnetId: z.subnetId,
      placementGroupName: undefined,
      instanceType: args.instanceType,
      amiType: INFERENCE_AMI_TYPE,
      enaExpress: args.enaExpress,
      userData,
      // Model weights are downloaded to the node; room for a 70B checkpoint.
      rootVolumeGiB: args.rootVolumeGiB ?? 300,
      nodes: counts[i]!,
      labels: { ...(args.labels ?? INFERENCE_NODE_LABEL) },
      taints: [{ ...GPU_TAINT }],
      kubernetesVersion: args.kubernetesVersion,
    }))
    this.nodeGroupNames = pools.map((p) => p.nodeGroup.nodeGroupName)
    this.launchTemplateIds = pools.map((p) => p.launchTemplate.id)
    this.gpusPerNode = info.gpus
    this.registerOutputs({ nodeGroupNames: this.nodeGroupNames, launchTemplateIds: this.launchTemplateIds })
  }
}
