import * as aws from '@pulumi/aws'
import * as pulumi from '@pulumi/pulumi'
import { gatewayAmiType, gatewayInstanceProblem, instanceType } from '../lib/instance-types.ts'
import { gatewayTuning, nodeUserData, tuningScript } from '../lib/user-data.ts'
import { declareNodePool } from './shared/node-pool.ts'

/** Node label that pins the gateway (and nothing GPU-bound) to these nodes. */
export const GATEWAY_NODE_LABEL = { 'velox.dev/role': 'gateway' } as const

export interface GatewayNodesArgs {
  readonly clusterName: pulumi.Input<string>
  readonly kubernetesVersion: string
  readonly nodeRoleArn: pulumi.Input<string>
  /** The cluster security group (node <-> control plane and node <-> node traffic). */
  readonly securityGroupIds: pulumi.Input<string>[]
  /** Private subnet of the AZ the placement group lives in. */
  readonly subnetId: pulumi.Input<string>
  /** c7gn/c6gn/c6in size: ENA, network-optimised. */
  readonly instanceType: string
  readonly nodes: { readonly min: number; readonly desired: number; readonly max: number }
  /** net.core.busy_poll/busy_read (µs); 0 disables. */
  readonly busyPollMicros: number
}

/**
 * Gateway nodes: network-optimised ENA instances in a cluster placement group (lowest latency
 * to each other and to the inference nodes placed beside them), ENA Express where the type
 * supports it, and kernel network tuning at boot. The placement group is exposed so inference
 * nodes can join it.
 */
export class GatewayNodes extends pulumi.ComponentResource {
  readonly placementGroupName: pulumi.Output<string>
  readonly nodeGroupName: pulumi.Output<string>
  readonly launchTemplateId: pulumi.Output<string>
  readonly enaExpress: boolean
  readonly amiType: string

  constructor(name: string, args: GatewayNodesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:nodes:GatewayNodes', name, {}, opts)
    const problem = gatewayInstanceProblem(args.instanceType)
    const info = instanceType(args.instanceType)
    if (problem || !info) throw new Error(`gateway nodes: ${problem ?? 'unknown instance type'}`)

    const placement = new aws.ec2.PlacementGroup(`${name}-placement`, { strategy: 'cluster', tags: { Name: `${name}-placement` } }, { parent: this })
    const pool = declareNodePool(this, name, {
      clusterName: args.clusterName,
      nodeRoleArn: args.nodeRoleArn,
      securityGroupIds: args.securityGroupIds,
      subnetId: args.subnetId,
      placementGroupName: placement.name,
      instanceType: args.instanceType,
      amiType: gatewayAmiType(info.arch),
      enaExpress: info.enaExpress,
      userData: nodeUserData(tuningScript(gatewayTuning(args.busyPollMicros))),
      rootVolumeGiB: 40,
      nodes: args.nodes,
      labels: { ...GATEWAY_NODE_LABEL },
      taints: [],
      kubernetesVersion: args.kubernetesVersion,
    })
    this.placementGroupName = placement.name
    this.nodeGroupName = pool.nodeGroup.nodeGroupName
    this.launchTemplateId = pool.launchTemplate.id
    this.enaExpress = info.enaExpress
    this.amiType = gatewayAmiType(info.arch)
    this.registerOutputs({ placementGroupName: this.placementGroupName, nodeGroupName: this.nodeGroupName, launchTemplateId: this.launchTemplateId })
  }
}
