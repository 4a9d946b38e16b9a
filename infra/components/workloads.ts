import * as k8s from '@pulumi/kubernetes'
import * as pulumi from '@pulumi/pulumi'
import {
  NAMESPACE, gatewayAwaitTimeout, gatewayConfigMap, gatewayDeployment, gatewayHpa, gatewayPdb, gatewayService,
  hfTokenSecret, namespace, nvidiaDevicePlugin, peerSecret, redisSecret, vllmDeployment, vllmPdb,
  vllmAwaitTimeout, vllmService, type VllmSpec,
} from '../lib/manifests.ts'

export interface WorkloadsArgs {
  /** The cluster's Kubernetes provider (ClusterAddons builds it), or a kubeconfig to build one from. */
  readonly provider?: k8s.Provider
  readonly kubeconfig?: pulumi.Input<string>
  readonly gateway: {
    readonly image: string
    /** Rendered gateway.yaml and its sha256 (pod annotation: any change rolls the pods). */
    readonly config: { readonly yaml: pulumi.Input<string>; readonly hash: pulumi.Input<string> }
    readonly nodeSelector: Record<string, string>
    readonly replicas: { readonly min: number; readonly max: number }
    readonly targetCpu: number
    readonly cpu: string
    readonly memory: string
    /** Seconds in-flight streams may run after SIGTERM (server.shutdownTimeoutMs). */
    readonly drainSeconds: number
    /** Cache AUTH token; stored in a Secret and exposed to the gateway as an env var. */
    readonly redisPassword?: pulumi.Input<string>
    /** Key presented to peer regions; stored in a Secret and exposed as VELOX_PEER_API_KEY. */
    readonly peerApiKey?: pulumi.Input<string>
  }
  readonly loadBalancer: { readonly certificateArn?: string; readonly sourceRanges: readonly string[] }
  readonly vllm: Omit<VllmSpec, 'hfToken'> & {
    /** Hugging Face token for gated weights: becomes the hf-token Secret vLLM reads HF_TOKEN from. */
    readonly hfToken?: pulumi.Input<string>
  }
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
    const provider = args.provider ?? new k8s.Provider(`${name}-k8s`, { kubeconfig: args.kubeconfig, enableServerSideApply: true }, { parent: this })
    const o = { parent: this, provider }

    const ns = new k8s.core.v1.Namespace(`${name}-ns`, namespace(), o)
    const inNs = { ...o, dependsOn: [ns] }

    const plugin = new k8s.apps.v1.DaemonSet(`${name}-nvidia-device-plugin`, nvidiaDevicePlugin(args.vllm), o)
    const { hfToken, ...vllmArgs } = args.vllm
    const hf = hfToken !== undefined ? new k8s.core.v1.Secret(`${name}-hf-token`, hfTokenSecret(pulumi.secret(hfToken)), inNs) : undefined
    const vllm: VllmSpec = { ...vllmArgs, hfToken: hf !== undefined }
    const vllmWait = vllmAwaitTimeout(vllm)
    const vllmDeploymentResource = new k8s.apps.v1.Deployment(`${name}-vllm`, vllmDeployment(vllm), {
      ...inNs, dependsOn: [ns, plugin, ...(hf ? [hf] : [])], customTimeouts: { create: vllmWait, update: vllmWait },
    })
    new k8s.core.v1.Service(`${name}-vllm`, vllmService(), inNs)
    new k8s.policy.v1.PodDisruptionBudget(`${name}-vllm`, vllmPdb(), inNs)

    // Separate Inputs: the YAML may be secret (it holds the peer key's hash), the hash never is.
    const config = args.gateway.config
    const configMap = new k8s.core.v1.ConfigMap(`${name}-gateway-config`, gatewayConfigMap(config.yaml), inNs)
    const secret = args.gateway.redisPassword !== undefined
      ? new k8s.core.v1.Secret(`${name}-gateway-redis`, redisSecret(pulumi.secret(args.gateway.redisPassword)), inNs)
      : undefined
    const peer = args.gateway.peerApiKey !== undefined
      ? new k8s.core.v1.Secret(`${name}-gateway-peer`, peerSecret(pulumi.secret(args.gateway.peerApiKey)), inNs)
      : undefined
    // The gateway turns ready once a local vLLM member answers: start it after vLLM is ready, so
    // its own rollout (and Pulumi's wait) is not spent on the model loading.
    const gatewayWait = gatewayAwaitTimeout(args.gateway)
    const deployment = new k8s.apps.v1.Deployment(`${name}-gateway`, gatewayDeployment({
      image: args.gateway.image,
      configHash: config.hash,
      redisPassword: secret !== undefined,
      peerKey: peer !== undefined,
      nodeSelector: args.gateway.nodeSelector,
      cpu: args.gateway.cpu,
      memory: args.gateway.memory,
      drainSeconds: args.gateway.drainSeconds,
    }), {
      ...inNs,
      dependsOn: [ns, configMap, vllmDeploymentResource, ...(secret ? [secret] : []), ...(peer ? [peer] : [])],
      customTimeouts: { create: gatewayWait, update: gatewayWait },
    })
    new k8s.policy.v1.PodDisruptionBudget(`${name}-gateway`, gatewayPdb(), inNs)
    new k8s.autoscaling.v2.HorizontalPodAutoscaler(`${name}-gateway`, gatewayHpa({ ...args.gateway.replicas, targetCpu: args.gateway.targetCpu }), { ...inNs, dependsOn: [deployment] })
    const service = new k8s.core.v1.Service(`${name}-gateway-lb`, gatewayService({ ...args.loadBalancer, drainSeconds: args.gateway.drainSeconds }), inNs)

    this.namespace = NAMESPACE
    this.loadBalancerHostname = service.status.loadBalancer.ingress.apply((ingress) => {
      const host = ingress?.[0]?.hostname
      if (!host) throw new Error('the gateway Service has no load balancer hostname yet')
      return host
    })
    this.registerOutputs({ loadBalancerHostname: this.loadBalancerHostname })
  }
}
