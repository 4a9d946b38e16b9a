import * as aws from '@pulumi/aws'
import * as pulumi from '@pulumi/pulumi'
import { renderKubeconfig } from '../lib/kubeconfig.ts'

export interface ClusterArgs {
  /** EKS cluster name (also used in subnet tags, so it is fixed up front). */
  readonly clusterName: string
  readonly region: string
  readonly kubernetesVersion: string
  /** Subnets for the control plane's ENIs: the private ones. */
  readonly subnetIds: pulumi.Input<string>[]
  /** CIDRs allowed on the public API endpoint; empty = private endpoint only. */
  readonly endpointPublicCidrs: readonly string[]
}

const MANAGED_POLICY = 'arn:aws:iam::aws:policy/'
const NODE_POLICIES = ['AmazonEKSWorkerNodePolicy', 'AmazonEKS_CNI_Policy', 'AmazonEC2ContainerRegistryReadOnly', 'AmazonSSMManagedInstanceCore']

function assumeRole(service: string): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: ['sts:AssumeRole', 'sts:TagSession'] }] })
}

/**
 * EKS control plane with its IAM role, the node role both node groups share (SSM instead of SSH),
 * and the OIDC provider that lets service accounts assume IAM roles (IRSA).
 */
export class Cluster extends pulumi.ComponentResource {
  readonly name: pulumi.Output<string>
  readonly endpoint: pulumi.Output<string>
  readonly clusterSecurityGroupId: pulumi.Output<string>
  readonly nodeRoleArn: pulumi.Output<string>
  readonly oidcProviderArn: pulumi.Output<string>
  readonly oidcIssuer: pulumi.Output<string>
  /** Kubeconfig using `aws eks get-token`; feeds the Kubernetes provider. */
  readonly kubeconfig: pulumi.Output<string>

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:cluster:Cluster', name, {}, opts)
    const parent = { parent: this }

    const clusterRole = new aws.iam.Role(`${name}-control-plane`, { assumeRolePolicy: assumeRole('eks.amazonaws.com') }, parent)
    const clusterPolicy = new aws.iam.RolePolicyAttachment(`${name}-control-plane`, {
      role: clusterRole.name, policyArn: `${MANAGED_POLICY}AmazonEKSClusterPolicy`,
    }, parent)

    const cluster = new aws.eks.Cluster(`${name}-eks`, {
      name: args.clusterName,
      version: args.kubernetesVersion,
      roleArn: clusterRole.arn,
      accessConfig: { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: true },
      vpcConfig: {
        subnetIds: args.subnetIds,
        endpointPrivateAccess: true,
        endpointPublicAccess: args.endpointPublicCidrs.length > 0,
        ...(args.endpointPublicCidrs.length > 0 ? { publicAccessCidrs: [...args.endpointPublicCidrs] } : {}),
      },
      enabledClusterLogTypes: ['api', 'audit', 'authenticator'],
      upgradePolicy: { supportType: 'STANDARD' },
    }, { parent: this, dependsOn: [clusterPolicy] })

    const nodeRole = new aws.iam.Role(`${name}-nodes`, { assumeRolePolicy: assumeRole('ec2.amazonaws.com') }, parent)
    const attachments = NODE_POLICIES.map((p) => new aws.iam.RolePolicyAttachment(`${name}-nodes-${p}`, {
      role: nodeRole.name, policyArn: `${MANAGED_POLICY}${p}`,
    }, parent))

    this.oidcIssuer = cluster.identities.apply((ids) => {
      const issuer = ids[0]?.oidcs?.[0]?.issuer
      if (!issuer) throw new Error(`EKS cluster ${args.clusterName} reported no OIDC issuer`)
      return issuer
    })
    const oidc = new aws.iam.OpenIdConnectProvider(`${name}-oidc`, {
      url: this.oidcIssuer, clientIdLists: ['sts.amazonaws.com'],
    }, parent)

    this.name = cluster.name
    this.endpoint = cluster.endpoint
    this.clusterSecurityGroupId = cluster.vpcConfig.apply((v) => {
      if (!v.clusterSecurityGroupId) throw new Error(`EKS cluster ${args.clusterName} reported no cluster security group`)
      return v.clusterSecurityGroupId
    })
    // Node groups must wait for the policies, or nodes boot without permission to join.
    this.nodeRoleArn = pulumi.all([nodeRole.arn, ...attachments.map((a) => a.id)]).apply(([arn]) => arn as string)
    this.oidcProviderArn = oidc.arn
    this.kubeconfig = pulumi.secret(pulumi.all([cluster.name, cluster.endpoint, cluster.certificateAuthority]).apply(([clusterName, endpoint, ca]) =>
      renderKubeconfig({ clusterName, endpoint, certificateAuthority: ca.data ?? '', region: args.region })))
    this.registerOutputs({
      name: this.name, endpoint: this.endpoint, clusterSecurityGroupId: this.clusterSecurityGroupId,
      nodeRoleArn: this.nodeRoleArn, oidcProviderArn: this.oidcProviderArn, kubeconfig: this.kubeconfig,
    })
  }
}
