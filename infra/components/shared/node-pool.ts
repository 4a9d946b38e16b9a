/**
 * Declares one EKS managed node group behind a launch template. Shared by the gateway and the
 * inference node groups so both get the same hardening: IMDSv2 only (hop limit 1: pods without
 * host networking cannot reach node credentials), no SSH key, private addresses only, encrypted
 * gp3 root volumes, and tags on the instances and volumes the autoscaling group launches.
 */
import * as ec2 from '@pulumi/aws/ec2/index.js'
import * as eks from '@pulumi/aws/eks/index.js'
import * as pulumi from '@pulumi/pulumi'
import type { AmiType } from '../../lib/instance-types.ts'

export interface NodePoolSpec {
  readonly clusterName: pulumi.Input<string>
  readonly nodeRoleArn: pulumi.Input<string>
  readonly securityGroupIds: pulumi.Input<string>[]
  /** One subnet: one AZ (a cluster placement group cannot span AZs). */
  readonly subnetId: pulumi.Input<string>
  /** A cluster placement group in that AZ, or none. */
  readonly placementGroupName: pulumi.Input<string> | undefined
  readonly instanceType: string
  readonly amiType: AmiType
  /** ENA Express (SRD) for TCP on the primary interface: only where both ends of same-subnet traffic support it. */
  readonly enaExpress: boolean
  readonly userData: string
  readonly rootVolumeGiB: number
  readonly nodes: { readonly min: number; readonly desired: number; readonly max: number }
  readonly labels: Record<string, string>
  readonly taints: { key: string; value: string; effect: 'NO_SCHEDULE' | 'NO_EXECUTE' | 'PREFER_NO_SCHEDULE' }[]
  readonly kubernetesVersion: string
}

export function launchTemplateArgs(name: string, spec: NodePoolSpec): ec2.LaunchTemplateArgs {
  return {
    description: `${name}: ${spec.instanceType} nodes`,
    updateDefaultVersion: true,
    metadataOptions: { httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1, instanceMetadataTags: 'disabled' },
    networkInterfaces: [{
      deviceIndex: 0,
      associatePublicIpAddress: 'false',
      deleteOnTermination: 'true',
      securityGroups: spec.securityGroupIds,
      // TCP uses SRD once enabled on both ends; nothing node-to-node here speaks UDP, so UDP stays off.
      ...(spec.enaExpress ? { enaSrdSpecification: { enaSrdEnabled: true, enaSrdUdpSpecification: { enaSrdUdpEnabled: false } } } : {}),
    }],
    ...(spec.placementGroupName !== undefined ? { placement: { groupName: spec.placementGroupName } } : {}),
    userData: spec.userData,
    ebsOptimized: 'true',
    blockDeviceMappings: [{
      deviceName: '/dev/xvda',
      ebs: { volumeSize: spec.rootVolumeGiB, volumeType: 'gp3', encrypted: 'true', deleteOnTermination: 'true', iops: 3000, throughput: 250 },
    }],
    monitoring: { enabled: true },
    tagSpecifications: ['instance', 'volume', 'network-interface'].map((resourceType) => ({ resourceType, tags: { Name: name, ...spec.labels } })),
  }
}

export function declareNodePool(parent: pulumi.Resource, name: string, spec: NodePoolSpec): { launchTemplate: ec2.LaunchTemplate; nodeGroup: eks.NodeGroup } {
  const launchTemplate = new ec2.LaunchTemplate(`${name}-lt`, launchTemplateArgs(name, spec), { parent })
  const nodeGroup = new eks.NodeGroup(`${name}-nodes`, {
    clusterName: spec.clusterName,
    nodeRoleArn: spec.nodeRoleArn,
    subnetIds: [spec.subnetId],
    amiType: spec.amiType,
    instanceTypes: [spec.instanceType],
    capacityType: 'ON_DEMAND',
    version: spec.kubernetesVersion,
    scalingConfig: { minSize: spec.nodes.min, desiredSize: spec.nodes.desired, maxSize: spec.nodes.max },
    updateConfig: { maxUnavailable: 1 },
    launchTemplate: { id: launchTemplate.id, version: launchTemplate.latestVersion.apply(String) },
    labels: spec.labels,
    taints: spec.taints,
    tags: { Name: name },
  }, { parent, ignoreChanges: ['scalingConfig.desiredSize'] })
  return { launchTemplate, nodeGroup }
}
