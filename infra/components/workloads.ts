import * as k8s from '@pulumi/kubernetes'
import * as pulumi from '@pulumi/pulumi'
import {
  NAMESPACE, gatewayConfigMap, gatewayDeployment, gatewayHpa, gatewayPdb, gatewayService,
  namespace, nvidiaDevicePlugin, redisSecret, vllmDeployment, vllmService, type VllmSpec,
} from '../lib/manifests.ts'

export interface WorkloadsArgs {
  /** Kubeconfig of the cluster; the Kubernetes provider is built from it. */
  readonly kubeconfig: pulumi.Input<string>
  readonly gateway: {
    readonly image: string
    /** Rendered gateway.yaml and its sha256 (pod annotation: any change rolls the pods). */
    readonly config: pulumi.Input<{ readonly yaml: string; readonly hash: string }>
    readonly nodeSelector: Record<string, string>
    readonly replicas: { readonly min: number; readonly max: number }
    readonly targetCpu: number
    readonly cpu: string
    readonly memory: string
    /** Cache AUTH token; stored in a Secret and exposed to the gateway as an env var. */
    readonly redisPassword?: pulumi.Input<string>
  }
  readonly loadBalancer: { readonly certificateArn?: string; readonly sourceRanges: readonly string[] }
  readonly vllm: VllmSpec
}

/**
 * Everything that runs in the cluster: vLLM and its headless Service, the NVIDIA device plugin,
 * and the gateway (ConfigMap, Deployment on the gateway nodes with host networking, disruption
 * budget, autoscaler, and the NLB Service in front of it).
 */
export class Workloads extends pulumi.ComponentResource {
  /** The NLB's DNS name, once AWS has provisioned it. */
  readonly loadBalancerHostname: pulumi.Output<string>
  readonly namespace: string

  constructor(name: string, args: WorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:k8s:Workloads', name, {}, opts)
    const provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: args.kubeconfig, enableServerSideApply: true }, { parent: this })
    const o = { parent: this, provider }

    const ns = new k8s.core.v1.Namespace(`${name}-ns`, namespace(), o)
    const inNs = { ...o, dependsOn: [ns] }

    const plugin = new k8s.apps.v1.DaemonSet(`${name}-nvidia-device-plugin`, nvidiaDevicePlugin(args.vllm), o)
    new k8s.apps.v1.Deployment(`${name}-vllm`, vllmDeployment(args.vllm), { ...inNs, dependsOn: [ns, plugin] })
    new k8s.core.v1.Service(`${name}-vllm`, vllmService(), inNs)

    const config = pulumi.output(args.gateway.config)
    const configMap = new k8s.core.v1.ConfigMap(`${name}-gateway-config`, gatewayConfigMap(config.yaml), inNs)
    const secret = args.gateway.redisPassword !== undefined
      ? new k8s.core.v1.Secret(`${name}-gateway-redis`, redisSecret(pulumi.secret(args.gateway.redisPassword)), inNs)
      : undefined
    const deployment = new k8s.apps.v1.Deployment(`${name}-gateway`, gatewayDeployment({
      image: args.gateway.image,
      configHash: config.hash,
      redisPassword: secret !== undefined,
      nodeSelector: args.gateway.nodeSelector,
      cpu: args.gateway.cpu,
      memory: args.gateway.memory,
    }), { ...inNs, dependsOn: [ns, configMap, ...(secret ? [secret] : [])] })
    new k8s.policy.v1.PodDisruptionBudget(`${name}-gateway`, gatewayPdb(), inNs)
    new k8s.autoscaling.v2.HorizontalPodAutoscaler(`${name}-gateway`, gatewayHpa({ ...args.gateway.replicas, targetCpu: args.gateway.targetCpu }), { ...inNs, dependsOn: [deployment] })
    const service = new k8s.core.v1.Service(`${name}-gateway-lb`, gatewayService(args.loadBalancer), inNs)

    this.namespace = NAMESPACE
    this.loadBalancerHostname = service.status.loadBalancer.ingress.apply((ingress) => {
      const host = ingress?.[0]?.hostname
      if (!host) throw new Error('the gateway Service has no load balancer hostname yet')
      return host
    })
    this.registerOutputs({ loadBalancerHostname: this.loadBalancerHostname })
  }
}
