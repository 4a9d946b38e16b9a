/**
 * The cluster software the platform installs with Helm, as plain data: chart coordinates pinned
 * to exact versions, values, and the IAM policies the controllers need. Pure; the ClusterAddons
 * component declares them.
 */

export interface ChartRef {
  readonly chart: string
  readonly version: string
  readonly repo: string
}

/** metrics-server: the resource metrics API the gateway's HorizontalPodAutoscaler reads. */
export const METRICS_SERVER_CHART: ChartRef = { chart: 'metrics-server', version: '3.13.1', repo: 'https://kubernetes-sigs.github.io/metrics-server/' }
/** AWS Load Balancer Controller: the gateway's NLB with IP targets (instead of the in-tree provider). */
export const LOAD_BALANCER_CONTROLLER_CHART: ChartRef = { chart: 'aws-load-balancer-controller', version: '3.5.0', repo: 'https://aws.github.io/eks-charts' }
/** Cluster Autoscaler: grows and shrinks the managed node groups (their ASGs are tagged for discovery by EKS). */
export const CLUSTER_AUTOSCALER_CHART: ChartRef = { chart: 'cluster-autoscaler', version: '9.59.0', repo: 'https://kubernetes.github.io/autoscaler' }

/** The Cluster Autoscaler release must match the cluster's minor version. */
export const CLUSTER_AUTOSCALER_IMAGE_TAGS: Readonly<Record<string, string>> = {
  '1.33': 'v1.33.6', '1.34': 'v1.34.5', '1.35': 'v1.35.2', '1.36': 'v1.36.1',
}

export const ADDONS_NAMESPACE = 'kube-system'
export const LOAD_BALANCER_CONTROLLER_SA = 'aws-load-balancer-controller'
export const CLUSTER_AUTOSCALER_SA = 'cluster-autoscaler'
/** `spec.loadBalancerClass` the controller owns; the in-tree cloud provider ignores such Services. */
export const NLB_LOAD_BALANCER_CLASS = 'service.k8s.aws/nlb'

export function clusterAutoscalerImageTag(kubernetesVersion: string): string {
  const tag = CLUSTER_AUTOSCALER_IMAGE_TAGS[kubernetesVersion]
  if (!tag) throw new Error(`no Cluster Autoscaler release known for Kubernetes ${kubernetesVersion}; known: ${Object.keys(CLUSTER_AUTOSCALER_IMAGE_TAGS).join(', ')}`)
  return tag
}

/** Trust policy of a role that EKS Pod Identity hands to a service account. */
export function podIdentityTrustPolicy(): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: 'pods.eks.amazonaws.com' }, Action: ['sts:AssumeRole', 'sts:TagSession'] }],
  })
}

export function metricsServerValues(): Record<string, unknown> {
  return {
    // Two replicas and a budget: the HPA keeps reading metrics through a node drain.
    replicas: 2,
    podDisruptionBudget: { enabled: true, maxUnavailable: 1 },
  }
}

export function loadBalancerControllerValues(s: { readonly clusterName: string; readonly region: string; readonly vpcId: string }): Record<string, unknown> {
  return {
    clusterName: s.clusterName,
    region: s.region,
    vpcId: s.vpcId,
    replicaCount: 2,
    // The role comes from a pod identity association on this service account (no IRSA annotation).
    serviceAccount: { create: true, name: LOAD_BALANCER_CONTROLLER_SA },
    podDisruptionBudget: { maxUnavailable: 1 },
    // Our Service names its loadBalancerClass; no webhook rewriting every LoadBalancer Service.
    enableServiceMutatorWebhook: false,
  }
}

export function clusterAutoscalerValues(s: { readonly clusterName: string; readonly region: string; readonly kubernetesVersion: string }): Record<string, unknown> {
  return {
    cloudProvider: 'aws',
    awsRegion: s.region,
    autoDiscovery: { clusterName: s.clusterName },
    image: { tag: clusterAutoscalerImageTag(s.kubernetesVersion) },
    rbac: { serviceAccount: { create: true, name: CLUSTER_AUTOSCALER_SA } },
    extraArgs: {
      // Gateway pods use host networking (one per node): a pending one means a node is missing.
      expander: 'least-waste',
      'balance-similar-node-groups': true,
      'skip-nodes-with-local-storage': false,
      // GPU nodes are expensive and slow to come back: only scale them down after a long idle.
      'scale-down-unneeded-time': '10m',
    },
  }
}

/**
 * What the Cluster Autoscaler may do: read the groups and instance types, and change only the
 * node groups of this cluster (EKS tags their ASGs k8s.io/cluster-autoscaler/<cluster>=owned).
 */
export function clusterAutoscalerPolicy(clusterName: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: [
          'autoscaling:DescribeAutoScalingGroups', 'autoscaling:DescribeAutoScalingInstances', 'autoscaling:DescribeLaunchConfigurations',
          'autoscaling:DescribeScalingActivities', 'autoscaling:DescribeTags', 'ec2:DescribeImages', 'ec2:DescribeInstanceTypes',
          'ec2:DescribeLaunchTemplateVersions', 'ec2:GetInstanceTypesFromInstanceRequirements', 'eks:DescribeNodegroup',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: ['autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
        Resource: '*',
        Condition: { StringEquals: { [`aws:ResourceTag/k8s.io/cluster-autoscaler/${clusterName}`]: 'owned' } },
      },
    ],
  })
}

/**
 * What the AWS Load Balancer Controller needs for NLBs with IP targets: read the network and
 * certificates, manage load balancers, target groups and listeners, and manage only the security
 * groups it created (tagged elbv2.k8s.aws/cluster).
 */
export function loadBalancerControllerPolicy(): string {
  const ownedByController = { Null: { 'aws:ResourceTag/elbv2.k8s.aws/cluster': 'false' } }
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iam:CreateServiceLinkedRole',
        Resource: '*',
        Condition: { StringEquals: { 'iam:AWSServiceName': 'elasticloadbalancing.amazonaws.com' } },
      },
      {
        Effect: 'Allow',
        Action: [
          'ec2:DescribeAccountAttributes', 'ec2:DescribeAddresses', 'ec2:DescribeAvailabilityZones', 'ec2:DescribeInternetGateways',
          'ec2:DescribeVpcs', 'ec2:DescribeVpcPeeringConnections', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups',
          'ec2:DescribeInstances', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeTags', 'ec2:DescribeCoipPools',
          'ec2:GetCoipPoolUsage', 'ec2:DescribeRouteTables', 'ec2:GetSecurityGroupsForVpc', 'ec2:DescribeIpamPools',
          'elasticloadbalancing:Describe*', 'acm:ListCertificates', 'acm:DescribeCertificate',
          'iam:ListServerCertificates', 'iam:GetServerCertificate', 'shield:GetSubscriptionState',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: ['ec2:CreateSecurityGroup', 'ec2:AuthorizeSecurityGroupIngress', 'ec2:RevokeSecurityGroupIngress'],
        Resource: '*',
      },
      { Effect: 'Allow', Action: ['ec2:CreateTags'], Resource: 'arn:aws:ec2:*:*:security-group/*', Condition: { StringEquals: { 'ec2:CreateAction': 'CreateSecurityGroup' } } },
      { Effect: 'Allow', Action: ['ec2:CreateTags', 'ec2:DeleteTags', 'ec2:DeleteSecurityGroup'], Resource: '*', Condition: ownedByController },
      {
        Effect: 'Allow',
        Action: [
          'elasticloadbalancing:CreateLoadBalancer', 'elasticloadbalancing:CreateTargetGroup', 'elasticloadbalancing:CreateListener',
          'elasticloadbalancing:DeleteListener', 'elasticloadbalancing:CreateRule', 'elasticloadbalancing:DeleteRule',
          'elasticloadbalancing:AddTags', 'elasticloadbalancing:RemoveTags',
          'elasticloadbalancing:ModifyLoadBalancerAttributes', 'elasticloadbalancing:SetIpAddressType', 'elasticloadbalancing:SetSecurityGroups',
          'elasticloadbalancing:SetSubnets', 'elasticloadbalancing:DeleteLoadBalancer', 'elasticloadbalancing:ModifyTargetGroup',
          'elasticloadbalancing:ModifyTargetGroupAttributes', 'elasticloadbalancing:DeleteTargetGroup', 'elasticloadbalancing:ModifyListener',
          'elasticloadbalancing:ModifyListenerAttributes', 'elasticloadbalancing:AddListenerCertificates', 'elasticloadbalancing:RemoveListenerCertificates',
          'elasticloadbalancing:ModifyRule', 'elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets',
        ],
        Resource: '*',
      },
    ],
  })
}
