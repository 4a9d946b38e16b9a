/**
 * Who may use the Kubernetes API of a region's cluster, as EKS access entries (authentication
 * mode API). Pure: turns the stack's role list into entries with their access policy.
 */

/** EKS access policies (cluster-access-policy ARNs, partition aws). */
export const ACCESS_POLICIES = {
  /** cluster-admin: everything, cluster-wide. Deploys need it (namespaces, CRDs, RBAC). */
  clusterAdmin: 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy',
  /** Read every object, Secrets included: what `pulumi preview` reads to diff. */
  adminView: 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy',
} as const

export interface ClusterAccessRoles {
  readonly deployRoleArn: string
  readonly previewRoleArn?: string | undefined
  readonly operatorRoleArns: readonly string[]
}

export interface AccessGrant {
  /** Resource name suffix: deploy, preview, operator-0... */
  readonly key: string
  readonly principalArn: string
  readonly policyArn: string
}

export function accessGrants(roles: ClusterAccessRoles): AccessGrant[] {
  return [
    { key: 'deploy', principalArn: roles.deployRoleArn, policyArn: ACCESS_POLICIES.clusterAdmin },
    ...(roles.previewRoleArn ? [{ key: 'preview', principalArn: roles.previewRoleArn, policyArn: ACCESS_POLICIES.adminView }] : []),
    ...roles.operatorRoleArns.map((principalArn, i) => ({ key: `operator-${i}`, principalArn, policyArn: ACCESS_POLICIES.clusterAdmin })),
  ]
}

/**
 * EKS-managed add-ons the program installs. `beforeNodes` ones must be active before a node can
 * become Ready (pod networking, service routing, pod identity); CoreDNS needs nodes to run on.
 */
export const NODE_ADDONS = ['vpc-cni', 'kube-proxy', 'eks-pod-identity-agent'] as const
export const WORKLOAD_ADDONS = ['coredns'] as const
