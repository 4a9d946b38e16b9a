/**
 * The Kubernetes objects the platform applies, as plain data. Pure: no resources are declared
 * here, only the shapes; Output-valued fields (rendered config, hash, secrets) pass through as
 * Inputs. The Workloads component declares them; the render-manifests tool prints what it declared.
 */
import type * as pulumi from '@pulumi/pulumi'
import type { types } from '@pulumi/kubernetes'
import { NLB_LOAD_BALANCER_CLASS } from './cluster-addons.ts'
import { GATEWAY_CONFIG_DIR, GATEWAY_CONFIG_FILE, GATEWAY_CONFIG_PATH, GATEWAY_PORT, PEER_API_KEY_ENV, REDIS_PASSWORD_ENV } from './gateway-config.ts'
import { ADMIN_PORT, ADMIN_PORT_NAME, ADMIN_SECRET_KEY, ADMIN_SECRET_NAME, ADMIN_TOKEN_ENV } from './monitoring.ts'


export const NAMESPACE = 'velox'
export const VLLM_NAME = 'vllm'
export const VLLM_PORT = 8000
export const GATEWAY_NAME = 'gateway'
export const CONFIG_HASH_ANNOTATION = 'velox.dev/config-hash'
/** A digest of the admin token: rotating the token rolls the pods, which read it at start. */
export const ADMIN_TOKEN_ANNOTATION = 'velox.dev/admin-token-digest'
export const REDIS_SECRET_NAME = 'gateway-redis'
export const PEER_SECRET_NAME = 'gateway-peer'
/** The Secret vLLM reads HF_TOKEN from (key `token`). */
export const HF_TOKEN_SECRET_NAME = 'hf-token'
/**
 * preStop pause: the pod keeps serving while the load balancer controller deregisters its target
 * (it reacts to the endpoint turning terminating) and every NLB node stops sending new flows to it.
 * Deregistration reaches all NLB nodes within seconds to tens of seconds; 40 s covers the slow end.
 */
export const GATEWAY_PRESTOP_SECONDS = 40
/** Image pull and node start on top of the model's own startup, before a vLLM rollout is failed. */
export const VLLM_SCHEDULING_SECONDS = 600
/** NLB TCP idle timeout (s), fixed by AWS at 350; the gateway's client keep-alive outlives it. */
export const NLB_IDLE_TIMEOUT_SECONDS = 350

/** The headless Service's in-cluster DNS name: every ready vLLM pod's address. */
export function inferenceUrl(namespace = NAMESPACE, name = VLLM_NAME): string {
  return `http://${name}.${namespace}.svc.cluster.local:${VLLM_PORT}`
}

/** The semantic cache's two models, each its own vLLM Deployment and headless Service. */
export const SEMANTIC_ROLES = ['embedding', 'reranker'] as const
export type SemanticRole = (typeof SEMANTIC_ROLES)[number]
export function semanticModelName(role: SemanticRole): string {
  return `${VLLM_NAME}-${role}`
}
function semanticLabels(role: SemanticRole): Record<string, string> {
  return { 'app.kubernetes.io/name': semanticModelName(role), 'app.kubernetes.io/component': 'semantic-cache', 'app.kubernetes.io/part-of': 'velox' }
}

const gatewayLabels = { 'app.kubernetes.io/name': GATEWAY_NAME, 'app.kubernetes.io/part-of': 'velox' }
const vllmLabels = { 'app.kubernetes.io/name': VLLM_NAME, 'app.kubernetes.io/part-of': 'velox' }

export function namespace(): types.input.core.v1.Namespace {
  return {
    metadata: {
      name: NAMESPACE,
      labels: {
        'app.kubernetes.io/part-of': 'velox',
        // The load balancer controller adds a readiness gate to the gateway pods: a rolled pod
        // counts as ready only once the NLB reports its target healthy, so a rollout never
        // removes the next pod before traffic reaches the new one.
        'elbv2.k8s.aws/pod-readiness-gate-inject': 'enabled',
      },
    },
  }
}

export interface VllmSpec {
  readonly image: string
  readonly model: string
  readonly replicas: number
  readonly gpus: number
  readonly extraArgs: readonly string[]
  readonly nodeSelector: Record<string, string>
  readonly gpuTaint: { readonly key: string; readonly value: string }
  /** Requests and limits from the GPU instance type (lib/sizing.ts). */
  readonly resources: { readonly cpu: string; readonly memory: string; readonly shm: string }
  /** Seconds the model may take to download and load (velox:vllmStartupSeconds). */
  readonly startupSeconds: number
  /** Whether the hf-token Secret is created (velox:hfToken); without it the variable is optional. */
  readonly hfToken: boolean
  /** Seconds a stopping vLLM pod gets to finish the requests it serves. */
  readonly drainSeconds: number
}

/** How long Kubernetes waits for a vLLM rollout to progress: the model's startup plus scheduling. */
export function vllmProgressDeadlineSeconds(s: Pick<VllmSpec, 'startupSeconds'>): number {
  return s.startupSeconds + VLLM_SCHEDULING_SECONDS
}

/** Pulumi's await for a Deployment gives up after 10 minutes unless its customTimeouts say otherwise. */
function minutes(seconds: number): string {
  return `${Math.ceil(seconds / 60)}m`
}

/** customTimeouts for the vLLM Deployment: as long as Kubernetes waits, plus a margin to read its verdict. */
export function vllmAwaitTimeout(s: Pick<VllmSpec, 'startupSeconds'>): string {
  return minutes(vllmProgressDeadlineSeconds(s) + 300)
}

export function vllmDeployment(s: VllmSpec): types.input.apps.v1.Deployment {
  return servingDeployment(VLLM_NAME, vllmLabels, s, [s.model, '--host', '0.0.0.0', '--port', String(VLLM_PORT), '--tensor-parallel-size', String(s.gpus), ...s.extraArgs])
}

/**
 * The semantic cache's embedding model or reranker: vLLM's pooling runner (`/v1/embeddings`;
 * `/v1/rerank` and `/v1/score` for a cross-encoder), one GPU per replica, probed, sized and rolled
 * out like the inference Deployment.
 */
export function semanticModelDeployment(role: SemanticRole, s: VllmSpec): types.input.apps.v1.Deployment {
  if (s.gpus !== 1) throw new Error(`the ${role} model runs on one GPU per replica, got ${s.gpus}`)
  return servingDeployment(semanticModelName(role), semanticLabels(role), s, [s.model, '--host', '0.0.0.0', '--port', String(VLLM_PORT), '--runner', 'pooling', ...s.extraArgs])
}

export function semanticModelService(role: SemanticRole): types.input.core.v1.Service {
  const labels = semanticLabels(role)
  return {
    metadata: { name: semanticModelName(role), namespace: NAMESPACE, labels },
    spec: { clusterIP: 'None', selector: labels, ports: [{ name: 'http', port: VLLM_PORT, targetPort: VLLM_PORT }] },
  }
}

export function semanticModelPdb(role: SemanticRole): types.input.policy.v1.PodDisruptionBudget {
  const labels = semanticLabels(role)
  return { metadata: { name: semanticModelName(role), namespace: NAMESPACE, labels }, spec: { maxUnavailable: 1, selector: { matchLabels: labels } } }
}

function servingDeployment(name: string, labels: Record<string, string>, s: VllmSpec, args: string[]): types.input.apps.v1.Deployment {
  const health = { httpGet: { path: '/health', port: VLLM_PORT } }
  return {
    metadata: { name, namespace: NAMESPACE, labels },
    spec: {
      replicas: s.replicas,
      selector: { matchLabels: labels },
      // Kubernetes' default (600 s) fails a rollout while a large model is still loading.
      progressDeadlineSeconds: vllmProgressDeadlineSeconds(s),
      // One GPU node per replica: a new pod cannot start before the old one frees the GPUs.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          nodeSelector: s.nodeSelector,
          tolerations: [{ key: s.gpuTaint.key, operator: 'Equal', value: s.gpuTaint.value, effect: 'NoSchedule' }],
          terminationGracePeriodSeconds: s.drainSeconds,
          containers: [{
            name: VLLM_NAME,
            image: s.image,
            // `vllm serve MODEL`: the model is the positional argument (--model is deprecated there).
            command: ['vllm', 'serve'],
            args,
            ports: [{ name: 'http', containerPort: VLLM_PORT }],
            env: [
              { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: HF_TOKEN_SECRET_NAME, key: 'token', optional: !s.hfToken } } },
              { name: 'HF_HOME', value: '/models' },
            ],
            resources: {
              requests: { cpu: s.resources.cpu, memory: s.resources.memory, 'nvidia.com/gpu': String(s.gpus) },
              limits: { memory: s.resources.memory, 'nvidia.com/gpu': String(s.gpus) },
            },
            // Downloading and loading weights takes minutes; liveness and readiness start after it.
            startupProbe: { ...health, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: Math.ceil(s.startupSeconds / 10) },
            readinessProbe: { ...health, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
            // A busy engine answers /health late, not never: a generous timeout before a restart.
            livenessProbe: { ...health, periodSeconds: 15, timeoutSeconds: 10, failureThreshold: 4 },
            volumeMounts: [{ name: 'shm', mountPath: '/dev/shm' }, { name: 'models', mountPath: '/models' }],
          }],
          volumes: [
            // NCCL between tensor-parallel workers needs more shared memory than the 64 MiB default.
            { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: s.resources.shm } },
            // Model cache on the node's 300 GiB root volume: a restarted pod does not download again.
            { name: 'models', hostPath: { path: '/var/lib/velox/models', type: 'DirectoryOrCreate' } },
          ],
        },
      },
    },
  }
}

export function vllmPdb(): types.input.policy.v1.PodDisruptionBudget {
  return { metadata: { name: VLLM_NAME, namespace: NAMESPACE, labels: vllmLabels }, spec: { maxUnavailable: 1, selector: { matchLabels: vllmLabels } } }
}

export function hfTokenSecret(token: pulumi.Input<string>): types.input.core.v1.Secret {
  return { metadata: { name: HF_TOKEN_SECRET_NAME, namespace: NAMESPACE, labels: vllmLabels }, type: 'Opaque', stringData: { token } }
}

export function peerSecret(key: pulumi.Input<string>): types.input.core.v1.Secret {
  return { metadata: { name: PEER_SECRET_NAME, namespace: NAMESPACE, labels: gatewayLabels }, type: 'Opaque', stringData: { apiKey: key } }
}

/** Headless: DNS returns every ready vLLM pod, and the gateway balances across them itself. */
export function vllmService(): types.input.core.v1.Service {
  return {
    metadata: { name: VLLM_NAME, namespace: NAMESPACE, labels: vllmLabels },
    spec: { clusterIP: 'None', selector: vllmLabels, ports: [{ name: 'http', port: VLLM_PORT, targetPort: VLLM_PORT }] },
  }
}

/**
 * The NVIDIA device plugin: advertises `nvidia.com/gpu` on the NVIDIA AMI's nodes. `alsoOn`: the
 * labels of a second GPU node group (the semantic cache's) it must run on too.
 */
export function nvidiaDevicePlugin(s: { readonly nodeSelector: Record<string, string>; readonly gpuTaint: { readonly key: string; readonly value: string }; readonly alsoOn?: Record<string, string> }): types.input.apps.v1.DaemonSet {
  const labels = { 'app.kubernetes.io/name': 'nvidia-device-plugin' }
  return {
    metadata: { name: 'nvidia-device-plugin', namespace: 'kube-system', labels },
    spec: {
      selector: { matchLabels: labels },
      updateStrategy: { type: 'RollingUpdate' },
      template: {
        metadata: { labels },
        spec: {
          priorityClassName: 'system-node-critical',
          ...(s.alsoOn === undefined ? { nodeSelector: s.nodeSelector } : {
            // Node selector terms are ORed: either GPU node group.
            affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [s.nodeSelector, s.alsoOn].map((labels) => ({
              matchExpressions: Object.entries(labels).map(([key, value]) => ({ key, operator: 'In', values: [value] })),
            })) } } },
          }),
          tolerations: [{ key: s.gpuTaint.key, operator: 'Exists', effect: 'NoSchedule' }],
          containers: [{
            name: 'nvidia-device-plugin',
            image: 'nvcr.io/nvidia/k8s-device-plugin:v0.17.1',
            env: [{ name: 'FAIL_ON_INIT_ERROR', value: 'false' }],
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            volumeMounts: [{ name: 'device-plugin', mountPath: '/var/lib/kubelet/device-plugins' }],
          }],
          volumes: [{ name: 'device-plugin', hostPath: { path: '/var/lib/kubelet/device-plugins' } }],
        },
      },
    },
  }
}

export function gatewayConfigMap(yaml: pulumi.Input<string>): types.input.core.v1.ConfigMap {
  return { metadata: { name: `${GATEWAY_NAME}-config`, namespace: NAMESPACE, labels: gatewayLabels }, data: { [GATEWAY_CONFIG_FILE]: yaml } }
}

export function redisSecret(token: pulumi.Input<string>): types.input.core.v1.Secret {
  return { metadata: { name: REDIS_SECRET_NAME, namespace: NAMESPACE, labels: gatewayLabels }, type: 'Opaque', stringData: { password: token } }
}

export interface GatewaySpec {
  readonly image: string
  readonly configHash: pulumi.Input<string>
  /** Digest of the admin token (never the token): its annotation rolls the pods on rotation. */
  readonly adminTokenDigest?: pulumi.Input<string>
  readonly redisPassword: boolean
  /** Whether the gateway-peer Secret exists (velox:peerApiKey). */
  readonly peerKey: boolean
  readonly nodeSelector: Record<string, string>
  /** Requested CPU: the HPA's utilisation is measured against it (lib/sizing.ts). */
  readonly cpu: string
  /** Memory request and limit (lib/sizing.ts). */
  readonly memory: string
  /** server.shutdownTimeoutMs in seconds: how long in-flight streams may run after SIGTERM. */
  readonly drainSeconds: number
}

/** customTimeouts for the gateway Deployment: Kubernetes' default 600 s deadline plus one pod's replacement. */
export function gatewayAwaitTimeout(s: Pick<GatewaySpec, 'drainSeconds'>): string {
  return minutes(600 + gatewayGracePeriodSeconds(s))
}

/** preStop pause, then the drain, then a margin for the process to exit. */
export function gatewayGracePeriodSeconds(s: Pick<GatewaySpec, 'drainSeconds'>): number {
  return GATEWAY_PRESTOP_SECONDS + s.drainSeconds + 10
}

export function gatewayDeployment(s: GatewaySpec): types.input.apps.v1.Deployment {
  return {
    metadata: { name: GATEWAY_NAME, namespace: NAMESPACE, labels: gatewayLabels },
    spec: {
      // No replicas: the HPA owns the count; a value here would fight it on every update.
      selector: { matchLabels: gatewayLabels },
      // Host networking binds the node's port: a surge pod has nowhere to go, so replace in place.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      template: {
        metadata: {
          labels: gatewayLabels,
          annotations: { [CONFIG_HASH_ANNOTATION]: s.configHash, ...(s.adminTokenDigest !== undefined ? { [ADMIN_TOKEN_ANNOTATION]: s.adminTokenDigest } : {}) },
        },
        spec: {
          hostNetwork: true,
          // Host networking would otherwise use the node's resolver and miss cluster DNS (vllm.velox.svc).
          dnsPolicy: 'ClusterFirstWithHostNet',
          nodeSelector: s.nodeSelector,
          // The preStop pause plus the gateway's drain (server.shutdownTimeoutMs), so long streams end cleanly.
          terminationGracePeriodSeconds: gatewayGracePeriodSeconds(s),
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: gatewayLabels } },
            { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: gatewayLabels } },
          ],
          containers: [{
            name: GATEWAY_NAME,
            image: s.image,
            args: ['--config', GATEWAY_CONFIG_PATH],
            ports: [
              { name: 'http', containerPort: GATEWAY_PORT, hostPort: GATEWAY_PORT, protocol: 'TCP' },
              // Admin listener (token-guarded): Prometheus scrapes it through the gateway-admin Service.
              { name: ADMIN_PORT_NAME, containerPort: ADMIN_PORT, hostPort: ADMIN_PORT, protocol: 'TCP' },
            ],
            env: [
              { name: ADMIN_TOKEN_ENV, valueFrom: { secretKeyRef: { name: ADMIN_SECRET_NAME, key: ADMIN_SECRET_KEY } } },
              ...(s.redisPassword ? [{ name: REDIS_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: REDIS_SECRET_NAME, key: 'password' } } }] : []),
              ...(s.peerKey ? [{ name: PEER_API_KEY_ENV, valueFrom: { secretKeyRef: { name: PEER_SECRET_NAME, key: 'apiKey' } } }] : []),
            ],
            // CPU: no limit (throttling adds tail latency); memory: request = limit, sized per worker.
            resources: { requests: { cpu: s.cpu, memory: s.memory }, limits: { memory: s.memory } },
            // Boot warms the upstream pools; liveness starts only once the process answers.
            startupProbe: { httpGet: { path: '/healthz', port: GATEWAY_PORT }, periodSeconds: 2, failureThreshold: 30, timeoutSeconds: 1 },
            readinessProbe: { httpGet: { path: '/readyz', port: GATEWAY_PORT }, periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 1 },
            livenessProbe: { httpGet: { path: '/healthz', port: GATEWAY_PORT }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 },
            // Keep serving while the load balancer deregisters the target; SIGTERM (and the drain) come after.
            lifecycle: { preStop: { sleep: { seconds: GATEWAY_PRESTOP_SECONDS } } },
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 10001, capabilities: { drop: ['ALL'] } },
            volumeMounts: [{ name: 'config', mountPath: GATEWAY_CONFIG_DIR, readOnly: true }],
          }],
          volumes: [{ name: 'config', configMap: { name: `${GATEWAY_NAME}-config` } }],
        },
      },
    },
  }
}

export function gatewayPdb(): types.input.policy.v1.PodDisruptionBudget {
  return { metadata: { name: GATEWAY_NAME, namespace: NAMESPACE, labels: gatewayLabels }, spec: { maxUnavailable: 1, selector: { matchLabels: gatewayLabels } } }
}

export function gatewayHpa(s: { readonly min: number; readonly max: number; readonly targetCpu: number }): types.input.autoscaling.v2.HorizontalPodAutoscaler {
  return {
    metadata: { name: GATEWAY_NAME, namespace: NAMESPACE, labels: gatewayLabels },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: GATEWAY_NAME },
      minReplicas: s.min,
      maxReplicas: s.max,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: s.targetCpu } } }],
      behavior: {
        scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 2, periodSeconds: 30 }] },
        scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: 120 }] },
      },
    },
  }
}

export interface LoadBalancerSpec {
  /** ACM certificate: TLS terminates on the NLB at 443. Absent: plain TCP on 80. */
  readonly certificateArn?: string
  readonly sourceRanges: readonly string[]
  /** The gateway's drain (s): the NLB keeps a deregistered target's connections that long. */
  readonly drainSeconds: number
}

export function listenerPort(certificateArn: string | undefined): number {
  return certificateArn ? 443 : 80
}

/**
 * How long the NLB keeps a deregistered target's established connections before it closes them:
 * the preStop pause plus the drain, so streams the gateway is finishing are not cut first.
 */
export function deregistrationDelaySeconds(s: Pick<LoadBalancerSpec, 'drainSeconds'>): number {
  return GATEWAY_PRESTOP_SECONDS + s.drainSeconds
}

/**
 * Service of type LoadBalancer owned by the AWS Load Balancer Controller (loadBalancerClass): an
 * internet-facing NLB with IP targets (the gateway pods' host addresses), health-checked on
 * /readyz so a pod that fails readiness (it does first when stopping) stops getting new flows.
 * Only annotations the controller honours are set.
 */
export function gatewayService(s: LoadBalancerSpec): types.input.core.v1.Service {
  const port = listenerPort(s.certificateArn)
  const p = 'service.beta.kubernetes.io/aws-load-balancer-'
  const annotations: Record<string, string> = {
    [`${p}scheme`]: 'internet-facing',
    [`${p}nlb-target-type`]: 'ip',
    [`${p}healthcheck-protocol`]: 'http',
    [`${p}healthcheck-path`]: '/readyz',
    [`${p}healthcheck-port`]: 'traffic-port',
    [`${p}healthcheck-interval`]: '10',
    [`${p}healthcheck-timeout`]: '5',
    [`${p}healthcheck-healthy-threshold`]: '2',
    [`${p}healthcheck-unhealthy-threshold`]: '2',
    // Gateway nodes may sit in fewer AZs than the NLB's subnets.
    [`${p}attributes`]: 'load_balancing.cross_zone.enabled=true',
    [`${p}target-group-attributes`]: [
      `deregistration_delay.timeout_seconds=${deregistrationDelaySeconds(s)}`,
      'deregistration_delay.connection_termination.enabled=true',
      'preserve_client_ip.enabled=true',
    ].join(','),
  }
  if (s.certificateArn) {
    annotations[`${p}ssl-cert`] = s.certificateArn
    annotations[`${p}ssl-ports`] = String(port)
    annotations[`${p}ssl-negotiation-policy`] = 'ELBSecurityPolicy-TLS13-1-2-2021-06'
  }
  return {
    metadata: { name: GATEWAY_NAME, namespace: NAMESPACE, labels: gatewayLabels, annotations },
    spec: {
      type: 'LoadBalancer',
      loadBalancerClass: NLB_LOAD_BALANCER_CLASS,
      loadBalancerSourceRanges: [...s.sourceRanges],
      selector: gatewayLabels,
      ports: [{ name: s.certificateArn ? 'https' : 'http', port, targetPort: GATEWAY_PORT, protocol: 'TCP' }],
    },
  }
}
