import * as ec2 from '@pulumi/aws/ec2/index.js'
import * as pulumi from '@pulumi/pulumi'
import { gatewayAmiType, gatewayInstanceProblem, instanceType } from '../lib/instance-types.ts'
import { gatewayTuning, nodeUserData, tuningScript } from '../lib/user-data.ts'
import { splitNodes } from '../lib/zones.ts'
import { declareNodePool } from './shared/node-pool.ts'

/** Node label that pins the gateway (and nothing GPU-bound) to these nodes. */
export const GATEWAY_NODE_LABEL = { 'velox.dev/role': 'gateway' } as const

/** One AZ's private subnet. */
export interface ZoneSubnet {
  readonly zone: pulumi.Input<string>
  readonly subnetId: pulumi.Input<string>
}

export interface GatewayNodesArgs {
  readonly clusterName: pulumi.Input<string>
  readonly kubernetesVersion: string
  readonly nodeRoleArn: pulumi.Input<string>
  /** The cluster security group (node <-> control plane and node <-> node traffic). */
  readonly securityGroupIds: pulumi.Input<string>[]
  /** One private subnet per AZ: a node group (and placement group) in each. */
  readonly zones: readonly ZoneSubnet[]
  /** c7gn/c6gn/c6in size: ENA, network-optimised. */
  readonly instanceType: string
  /** Totals over every AZ; split with lib/zones.ts splitNodes. */
  readonly nodes: { readonly min: number; readonly desired: number; readonly max: number }
  /** net.core.busy_poll/busy_read (µs); 0 disables. */
  readonly busyPollMicros: number
  /** ENA Express on these nodes (decided with the inference type: both ends must support it). */
  readonly enaExpress: boolean
}

/**
 * Gateway nodes: network-optimised ENA instances, one managed node group per AZ, each in its own
 * cluster placement group (a cluster placement group lives in one AZ; packing the gateways of an
 * AZ together keeps their east-west hops on one network spine), kernel network tuning at boot.
 */
export class GatewayNodes extends pulumi.ComponentResource {
  readonly placementGroupNames: pulumi.Output<string>[]
  readonly nodeGroupNames: pulumi.Output<string>[]
  readonly launchTemplateIds: pulumi.Output<string>[]
  readonly enaExpress: boolean
  readonly amiType: string

  constructor(name: string, args: GatewayNodesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:nodes:GatewayNodes', name, {}, opts)
    const problem = gatewayInstanceProblem(args.instanceType)
    const info = instanceType(args.instanceType)
    if (problem || !info) throw new Error(`gateway nodes: ${problem ?? 'unknown instance type'}`)
    if (args.enaExpress && !info.enaExpress) throw new Error(`gateway nodes: "${args.instanceType}" does not support ENA Express`)
    if (args.zones.length < 2) throw new Error(`gateway nodes: need at least two AZs, got ${args.zones.length}`)

    const counts = splitNodes(args.nodes, args.zones.length)
    const userData = nodeUserData(tuningScript(gatewayTuning(args.busyPollMicros)))
    const pools = args.zones.map((z, i) => {
      const placement = new ec2.PlacementGroup(`${name}-${i}-placement`, { strategy: 'cluster', tags: { Name: `${name}-${i}-placement` } }, { parent: this })
      const pool = declareNodePool(this, `${name}-${i}`, {
        clusterName: args.clusterName,
        nodeRoleArn: args.nodeRoleArn,
        securityGroupIds: args.securityGroupIds,
        subnetId: z.subnetId,
        placementGroupName: placement.name,
        instanceType: args.instanceType,
        amiType: gatewayAmiType(info.arch),
        enaExpress: args.enaExpress,
        userData,
        rootVolumeGiB: 40,
        nodes: counts[i]!,
        labels: { ...GATEWAY_NODE_LABEL },
        taints: [],
        kubernetesVersion: args.kubernetesVersion,
      })
      return { placement, pool }
    })
    this.placementGroupNames = pools.map((p) => p.placement.name)
    this.nodeGroupNames = pools.map((p) => p.pool.nodeGroup.nodeGroupName)
    this.launchTemplateIds = pools.map((p) => p.pool.launchTemplate.id)
    this.enaExpress = args.enaExpress
    this.amiType = gatewayAmiType(info.arch)
    this.registerOutputs({ placementGroupNames: this.placementGroupNames, nodeGroupNames: this.nodeGroupNames, launchTemplateIds: this.launchTemplateIds })
  }
}
