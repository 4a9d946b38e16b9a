import * as eks from '@pulumi/aws/eks/index.js'
import * as iam from '@pulumi/aws/iam/index.js'
import * as k8s from '@pulumi/kubernetes'
import * as pulumi from '@pulumi/pulumi'
import {
  ADDONS_NAMESPACE, CLUSTER_AUTOSCALER_CHART, CLUSTER_AUTOSCALER_SA, LOAD_BALANCER_CONTROLLER_CHART, LOAD_BALANCER_CONTROLLER_SA,
  METRICS_SERVER_CHART, clusterAutoscalerPolicy, clusterAutoscalerValues, loadBalancerControllerPolicy, loadBalancerControllerValues,
  metricsServerValues, podIdentityTrustPolicy, type ChartRef,
} from '../lib/cluster-addons.ts'

export interface ClusterAddonsArgs {
  /** Kubeconfig of the cluster; the Kubernetes provider every in-cluster resource uses is built from it. */
  readonly kubeconfig: pulumi.Input<string>
  readonly clusterName: pulumi.Input<string>
  readonly kubernetesVersion: string
  readonly region: string
  readonly vpcId: pulumi.Input<string>
  /**
   * Resources the pod identity associations need first (the eks-pod-identity-agent add-on): a
   * controller started before the agent runs gets no credentials until it restarts.
   */
  readonly podIdentityReady?: pulumi.Input<pulumi.Resource>[]
}

/**
 * Cluster software installed with Helm: metrics-server (the HPA's metrics), the AWS Load
 * Balancer Controller (NLB with IP targets) and the Cluster Autoscaler (node groups follow
 * pending pods), each controller with an IAM role handed to its service account by EKS Pod Identity.
 */
export class ClusterAddons extends pulumi.ComponentResource {
  /** The Kubernetes provider for the cluster; Workloads uses the same one. */
  readonly provider: k8s.Provider
  /** What workloads must wait for: the controllers their objects rely on (LBC webhooks, metrics API). */
  readonly ready: pulumi.Resource[]

  constructor(name: string, args: ClusterAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:k8s:ClusterAddons', name, {}, opts)
    const parent = { parent: this }
    this.provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: args.kubeconfig, enableServerSideApply: true }, parent)
    const inCluster = { parent: this, provider: this.provider }

    const release = (id: string, chart: ChartRef, values: pulumi.Input<Record<string, unknown>>, dependsOn: pulumi.Input<pulumi.Resource>[] = []) =>
      new k8s.helm.v3.Release(`${name}-${id}`, {
        name: chart.chart,
        chart: chart.chart,
        version: chart.version,
        repositoryOpts: { repo: chart.repo },
        namespace: ADDONS_NAMESPACE,
        values,
        // Wait until the chart's Deployments are ready: later objects rely on their webhooks and APIs.
        atomic: true,
        timeout: 600,
      }, { ...inCluster, dependsOn })

    const podIdentity = (id: string, serviceAccount: string, policy: pulumi.Input<string>) => {
      const role = new iam.Role(`${name}-${id}`, { assumeRolePolicy: podIdentityTrustPolicy() }, parent)
      const rolePolicy = new iam.RolePolicy(`${name}-${id}`, { role: role.id, policy }, parent)
      const association = new eks.PodIdentityAssociation(`${name}-${id}`, {
        clusterName: args.clusterName,
        namespace: ADDONS_NAMESPACE,
        serviceAccount,
        roleArn: role.arn,
      }, { parent: this, dependsOn: [rolePolicy, ...(args.podIdentityReady ?? [])] as pulumi.Input<pulumi.Resource>[] })
      return association
    }

    const metricsServer = release('metrics-server', METRICS_SERVER_CHART, metricsServerValues())

    const lbcIdentity = podIdentity('lb-controller', LOAD_BALANCER_CONTROLLER_SA, loadBalancerControllerPolicy())
    const lbc = release('lb-controller', LOAD_BALANCER_CONTROLLER_CHART,
      pulumi.all([args.clusterName, args.vpcId]).apply(([clusterName, vpcId]) => loadBalancerControllerValues({ clusterName, region: args.region, vpcId })),
      [lbcIdentity])

    const caIdentity = podIdentity('autoscaler', CLUSTER_AUTOSCALER_SA, pulumi.output(args.clusterName).apply(clusterAutoscalerPolicy))
    release('autoscaler', CLUSTER_AUTOSCALER_CHART,
      pulumi.output(args.clusterName).apply((clusterName) => clusterAutoscalerValues({ clusterName, region: args.region, kubernetesVersion: args.kubernetesVersion })),
      [caIdentity])

    this.ready = [lbc, metricsServer]
    this.registerOutputs({})
  }
}
