import * as eks from '@pulumi/aws/eks/index.js'
import * as iam from '@pulumi/aws/iam/index.js'
import * as vpc from '@pulumi/aws/vpc/index.js'
import * as pulumi from '@pulumi/pulumi'
import { accessGrants, type ClusterAccessRoles } from '../lib/cluster-access.ts'
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
  /** Private CIDRs (runners in or peered with the VPC) let into the cluster security group on 443. */
  readonly endpointPrivateCidrs: readonly string[]
  /** IAM roles given access entries; the creator gets none implicitly. */
  readonly access: ClusterAccessRoles
}

const MANAGED_POLICY = 'arn:aws:iam::aws:policy/'
const NODE_POLICIES = ['AmazonEKSWorkerNodePolicy', 'AmazonEKS_CNI_Policy', 'AmazonEC2ContainerRegistryReadOnly', 'AmazonSSMManagedInstanceCore']

function assumeRole(service: string): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: ['sts:AssumeRole', 'sts:TagSession'] }] })
}

/**
 * EKS control plane with its IAM role, access entries for the deploy, preview and operator roles,
 * the node role both node groups share (SSM instead of SSH), and the OIDC provider that lets
 * service accounts assume IAM roles (IRSA). The kubeconfig resolves only once every access policy
 * is associated, so nothing talks to the Kubernetes API before the deploy role may.
 */
export class Cluster extends pulumi.ComponentResource {
  readonly name: pulumi.Output<string>
  readonly arn: pulumi.Output<string>
  readonly endpoint: pulumi.Output<string>
  readonly clusterSecurityGroupId: pulumi.Output<string>
  readonly nodeRoleArn: pulumi.Output<string>
  readonly oidcProviderArn: pulumi.Output<string>
  readonly oidcIssuer: pulumi.Output<string>
  /** Principals with an access entry, in declaration order. */
  readonly accessPrincipals: string[]
  /** Kubeconfig using `aws eks get-token`; feeds the Kubernetes provider. */
  readonly kubeconfig: pulumi.Output<string>

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:cluster:Cluster', name, {}, opts)
    const parent = { parent: this }

    const clusterRole = new iam.Role(`${name}-control-plane`, { assumeRolePolicy: assumeRole('eks.amazonaws.com') }, parent)
    const clusterPolicy = new iam.RolePolicyAttachment(`${name}-control-plane`, {
      role: clusterRole.name, policyArn: `${MANAGED_POLICY}AmazonEKSClusterPolicy`,
    }, parent)

    const cluster = new eks.Cluster(`${name}-eks`, {
      name: args.clusterName,
      version: args.kubernetesVersion,
      roleArn: clusterRole.arn,
      // Access entries only (no aws-auth ConfigMap). The creator is not made admin behind the
      // program's back: every principal is an entry below, so access is reviewable in one place.
      accessConfig: { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: false },
      // The EKS-managed add-ons (components/addons.ts) replace the self-managed defaults.
      bootstrapSelfManagedAddons: false,
      vpcConfig: {
        subnetIds: args.subnetIds,
        endpointPrivateAccess: true,
        endpointPublicAccess: args.endpointPublicCidrs.length > 0,
        ...(args.endpointPublicCidrs.length > 0 ? { publicAccessCidrs: [...args.endpointPublicCidrs] } : {}),
      },
      enabledClusterLogTypes: ['api', 'audit', 'authenticator'],
      upgradePolicy: { supportType: 'STANDARD' },
      // Lets an operator (or ARC autoshift) move traffic away from an impaired AZ.
      zonalShiftConfig: { enabled: true },
    }, { parent: this, dependsOn: [clusterPolicy] })

    this.clusterSecurityGroupId = cluster.vpcConfig.apply((v) => {
      if (!v.clusterSecurityGroupId) throw new Error(`EKS cluster ${args.clusterName} reported no cluster security group`)
      return v.clusterSecurityGroupId
    })
    // The private endpoint's ENIs carry the cluster security group, which admits only its members.
    const apiRules = args.endpointPrivateCidrs.map((cidr, i) => new vpc.SecurityGroupIngressRule(`${name}-api-${i}`, {
      securityGroupId: this.clusterSecurityGroupId,
      ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidrIpv4: cidr,
      description: `Kubernetes API from ${cidr}`,
    }, parent))

    const grants = accessGrants(args.access)
    const associations = grants.map((g) => {
      const entry = new eks.AccessEntry(`${name}-access-${g.key}`, {
        clusterName: cluster.name, principalArn: g.principalArn, type: 'STANDARD',
      }, parent)
      return new eks.AccessPolicyAssociation(`${name}-access-${g.key}`, {
        clusterName: cluster.name, principalArn: entry.principalArn, policyArn: g.policyArn, accessScope: { type: 'cluster' },
      }, parent)
    })

    const nodeRole = new iam.Role(`${name}-nodes`, { assumeRolePolicy: assumeRole('ec2.amazonaws.com') }, parent)
    const attachments = NODE_POLICIES.map((p) => new iam.RolePolicyAttachment(`${name}-nodes-${p}`, {
      role: nodeRole.name, policyArn: `${MANAGED_POLICY}${p}`,
    }, parent))

    this.oidcIssuer = cluster.identities.apply((ids) => {
      const issuer = ids[0]?.oidcs?.[0]?.issuer
      if (!issuer) throw new Error(`EKS cluster ${args.clusterName} reported no OIDC issuer`)
      return issuer
    })
    const oidc = new iam.OpenIdConnectProvider(`${name}-oidc`, {
      url: this.oidcIssuer, clientIdLists: ['sts.amazonaws.com'],
    }, parent)

    this.name = cluster.name
    this.arn = cluster.arn
    this.endpoint = cluster.endpoint
    this.accessPrincipals = grants.map((g) => g.principalArn)
    // Node groups must wait for the policies, or nodes boot without permission to join.
    this.nodeRoleArn = pulumi.all([nodeRole.arn, ...attachments.map((a) => a.id)]).apply(([arn]) => arn as string)
    this.oidcProviderArn = oidc.arn
    const accessReady = pulumi.all([...associations.map((a) => a.id), ...apiRules.map((r) => r.id)])
    this.kubeconfig = pulumi.secret(pulumi.all([cluster.name, cluster.endpoint, cluster.certificateAuthority, accessReady]).apply(([clusterName, endpoint, ca]) => {
      if (!ca.data) throw new Error(`EKS cluster ${args.clusterName} reported no certificate authority`)
      return renderKubeconfig({ clusterName, endpoint, certificateAuthority: ca.data, region: args.region })
    }))
    this.registerOutputs({
      name: this.name, arn: this.arn, endpoint: this.endpoint, clusterSecurityGroupId: this.clusterSecurityGroupId,
      nodeRoleArn: this.nodeRoleArn, oidcProviderArn: this.oidcProviderArn, kubeconfig: this.kubeconfig,
    })
  }
}
