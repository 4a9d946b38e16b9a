import * as pulumi from '@pulumi/pulumi'
import { INFERENCE_AMI_TYPE, inferenceInstanceProblem, instanceType } from '../lib/instance-types.ts'
import { gatewayTuning, nodeUserData, tuningScript } from '../lib/user-data.ts'
import { declareNodePool } from './shared/node-pool.ts'

export const INFERENCE_NODE_LABEL = { 'velox.dev/role': 'inference' } as const
/** The taint the NVIDIA AMI's GPUs are guarded by; only GPU workloads tolerate it. */
export const GPU_TAINT = { key: 'nvidia.com/gpu', value: 'present', effect: 'NO_SCHEDULE' } as const

export interface InferenceNodesArgs {
  readonly clusterName: pulumi.Input<string>
  readonly kubernetesVersion: string
  readonly nodeRoleArn: pulumi.Input<string>
  readonly securityGroupIds: pulumi.Input<string>[]
  /** Same subnet (AZ) as the gateway nodes. */
  readonly subnetId: pulumi.Input<string>
  /** The gateway nodes' cluster placement group: gateway -> vLLM stays inside one network spine. */
  readonly placementGroupName: pulumi.Input<string>
  /** g6e/p5 class. */
  readonly instanceType: string
  readonly nodes: { readonly min: number; readonly desired: number; readonly max: number }
}

/** GPU nodes for vLLM on the NVIDIA AL2023 AMI, tainted, colocated with the gateway nodes. */
export class InferenceNodes extends pulumi.ComponentResource {
  readonly nodeGroupName: pulumi.Output<string>
  readonly launchTemplateId: pulumi.Output<string>
  /** GPUs per node: vLLM's tensor parallel size. */
  readonly gpusPerNode: number

  constructor(name: string, args: InferenceNodesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:nodes:InferenceNodes', name, {}, opts)
    const problem = inferenceInstanceProblem(args.instanceType)
    const info = instanceType(args.instanceType)
    if (problem || !info) throw new Error(`inference nodes: ${problem ?? 'unknown instance type'}`)

    const pool = declareNodePool(this, name, {
      clusterName: args.clusterName,
      nodeRoleArn: args.nodeRoleArn,
      securityGroupIds: args.securityGroupIds,
      subnetId: args.subnetId,
      placementGroupName: args.placementGroupName,
      instanceType: args.instanceType,
      amiType: INFERENCE_AMI_TYPE,
      enaExpress: info.enaExpress,
      // vLLM's HTTP server benefits from the same backlog and buffer settings; no busy polling
      // on GPU hosts, whose CPUs feed the GPUs.
      userData: nodeUserData(tuningScript(gatewayTuning(0))),
      // Model weights are downloaded to the node; room for a 70B checkpoint.
      rootVolumeGiB: 300,
      nodes: args.nodes,
      labels: { ...INFERENCE_NODE_LABEL },
      taints: [{ ...GPU_TAINT }],
      kubernetesVersion: args.kubernetesVersion,
    })
    this.nodeGroupName = pool.nodeGroup.nodeGroupName
    this.launchTemplateId = pool.launchTemplate.id
    this.gpusPerNode = info.gpus
    this.registerOutputs({ nodeGroupName: this.nodeGroupName, launchTemplateId: this.launchTemplateId })
  }
}
