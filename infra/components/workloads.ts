import { createHash } from 'node:crypto'
import * as k8s from '@pulumi/kubernetes'
import * as pulumi from '@pulumi/pulumi'
import * as random from '@pulumi/random'
import {
  NAMESPACE, SEMANTIC_ROLES, gatewayAwaitTimeout, gatewayConfigMap, gatewayDeployment, gatewayHpa, gatewayPdb, gatewayService,
  hfTokenSecret, namespace, nvidiaDevicePlugin, peerSecret, redisSecret, semanticModelDeployment, semanticModelPdb, semanticModelService,
  vllmDeployment, vllmPdb, vllmAwaitTimeout, vllmService, type SemanticRole, type VllmSpec,
} from '../lib/manifests.ts'
import { adminService, adminTokenSecret } from '../lib/monitoring.ts'

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
  /**
   * The semantic cache's models (velox:semanticCache), each a vLLM Deployment on the semantic GPU
   * nodes (`nodeSelector`), one GPU per replica; absent: semantic caching is off.
   */
  readonly semantic?: Readonly<Record<SemanticRole, Omit<VllmSpec, 'hfToken'>>>
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

    const plugin = new k8s.apps.v1.DaemonSet(`${name}-nvidia-device-plugin`, nvidiaDevicePlugin({
      ...args.vllm, ...(args.semantic ? { alsoOn: args.semantic.embedding.nodeSelector } : {}),
    }), o)
    const { hfToken, ...vllmArgs } = args.vllm
    const hf = hfToken !== undefined ? new k8s.core.v1.Secret(`${name}-hf-token`, hfTokenSecret(pulumi.secret(hfToken)), inNs) : undefined
    const vllm: VllmSpec = { ...vllmArgs, hfToken: hf !== undefined }
    const vllmWait = vllmAwaitTimeout(vllm)
    const vllmDeploymentResource = new k8s.apps.v1.Deployment(`${name}-vllm`, vllmDeployment(vllm), {
      ...inNs, dependsOn: [ns, plugin, ...(hf ? [hf] : [])], customTimeouts: { create: vllmWait, update: vllmWait },
    })
    new k8s.core.v1.Service(`${name}-vllm`, vllmService(), inNs)
    new k8s.policy.v1.PodDisruptionBudget(`${name}-vllm`, vllmPdb(), inNs)

    const semanticModels: k8s.apps.v1.Deployment[] = []
    for (const role of args.semantic ? SEMANTIC_ROLES : []) {
      const spec: VllmSpec = { ...args.semantic![role], hfToken: hf !== undefined }
      const wait = vllmAwaitTimeout(spec)
      semanticModels.push(new k8s.apps.v1.Deployment(`${name}-${role}`, semanticModelDeployment(role, spec), {
        ...inNs, dependsOn: [ns, plugin, ...(hf ? [hf] : [])], customTimeouts: { create: wait, update: wait },
      }))
      new k8s.core.v1.Service(`${name}-${role}`, semanticModelService(role), inNs)
      new k8s.policy.v1.PodDisruptionBudget(`${name}-${role}`, semanticModelPdb(role), inNs)
    }

    // The admin listener's token: generated once, kept (encrypted) in the stack's state; the
    // gateway reads it from the Secret, and so does Prometheus (the ServiceMonitor). Rotate with
    // `pulumi up --replace <urn of the RandomPassword>`; the token's digest on the pod template
    // rolls the pods then (the digest of 48 random characters reveals nothing, so it is unsecret).
    const adminToken = new random.RandomPassword(`${name}-admin-token`, { length: 48, special: false }, { parent: this })
    const adminSecret = new k8s.core.v1.Secret(`${name}-gateway-admin`, adminTokenSecret(adminToken.result), inNs)
    new k8s.core.v1.Service(`${name}-gateway-admin`, adminService(), inNs)
    const adminTokenDigest = pulumi.unsecret(adminToken.result.apply((t) => createHash('sha256').update(t).digest('hex').slice(0, 16)))

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
      adminTokenDigest,
      redisPassword: secret !== undefined,
      peerKey: peer !== undefined,
      nodeSelector: args.gateway.nodeSelector,
      cpu: args.gateway.cpu,
      memory: args.gateway.memory,
      drainSeconds: args.gateway.drainSeconds,
    }), {
      ...inNs,
      // The semantic models too, so the first gateway's semantic lookups find them serving.
      dependsOn: [ns, configMap, adminSecret, vllmDeploymentResource, ...semanticModels, ...(secret ? [secret] : []), ...(peer ? [peer] : [])],
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
