/**
 * The Kubernetes objects the platform applies, as plain data. Pure: no resources are declared
 * here, only the shapes; Output-valued fields (rendered config, hash, secrets) pass through as
 * Inputs. The Workloads component declares them; the render-manifests tool prints what it declared.
 */
import type * as pulumi from '@pulumi/pulumi'
import type { types } from '@pulumi/kubernetes'
import { GATEWAY_CONFIG_DIR, GATEWAY_CONFIG_FILE, GATEWAY_CONFIG_PATH, GATEWAY_PORT, REDIS_PASSWORD_ENV } from './gateway-config.ts'


export const NAMESPACE = 'velox'
export const VLLM_NAME = 'vllm'
export const VLLM_PORT = 8000
export const GATEWAY_NAME = 'gateway'
export const CONFIG_HASH_ANNOTATION = 'velox.dev/config-hash'
export const REDIS_SECRET_NAME = 'gateway-redis'
/** NLB TCP idle timeout (s), fixed by AWS at 350; the gateway's client keep-alive outlives it. */
export const NLB_IDLE_TIMEOUT_SECONDS = 350

/** The headless Service's in-cluster DNS name: every ready vLLM pod's address. */
export function inferenceUrl(namespace = NAMESPACE): string {
  return `http://${VLLM_NAME}.${namespace}.svc.cluster.local:${VLLM_PORT}`
}

const gatewayLabels = { 'app.kubernetes.io/name': GATEWAY_NAME, 'app.kubernetes.io/part-of': 'velox' }
const vllmLabels = { 'app.kubernetes.io/name': VLLM_NAME, 'app.kubernetes.io/part-of': 'velox' }

export function namespace(): types.input.core.v1.Namespace {
  return { metadata: { name: NAMESPACE, labels: { 'app.kubernetes.io/part-of': 'velox' } } }
}

export interface VllmSpec {
  readonly image: string
  readonly model: string
  readonly replicas: number
  readonly gpus: number
  readonly extraArgs: readonly string[]
  readonly nodeSelector: Record<string, string>
  readonly gpuTaint: { readonly key: string; readonly value: string }
}

export function vllmDeployment(s: VllmSpec): types.input.apps.v1.Deployment {
  return {
    metadata: { name: VLLM_NAME, namespace: NAMESPACE, labels: vllmLabels },
    spec: {
      replicas: s.replicas,
      selector: { matchLabels: vllmLabels },
      // One GPU node per replica: a new pod cannot start before the old one frees the GPUs.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      template: {
        metadata: { labels: vllmLabels },
        spec: {
          nodeSelector: s.nodeSelector,
          tolerations: [{ key: s.gpuTaint.key, operator: 'Equal', value: s.gpuTaint.value, effect: 'NoSchedule' }],
          containers: [{
            name: VLLM_NAME,
            image: s.image,
            args: ['--model', s.model, '--host', '0.0.0.0', '--port', String(VLLM_PORT), '--tensor-parallel-size', String(s.gpus), ...s.extraArgs],
            ports: [{ name: 'http', containerPort: VLLM_PORT }],
            env: [{ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf-token', key: 'token', optional: true } } }],
            resources: { limits: { 'nvidia.com/gpu': String(s.gpus) }, requests: { 'nvidia.com/gpu': String(s.gpus) } },
            // Downloading and loading weights takes minutes; only then do probes matter.
            startupProbe: { httpGet: { path: '/health', port: VLLM_PORT }, periodSeconds: 10, failureThreshold: 90 },
            readinessProbe: { httpGet: { path: '/health', port: VLLM_PORT }, periodSeconds: 5, failureThreshold: 2 },
            livenessProbe: { httpGet: { path: '/health', port: VLLM_PORT }, periodSeconds: 15, failureThreshold: 4 },
            volumeMounts: [{ name: 'shm', mountPath: '/dev/shm' }, { name: 'models', mountPath: '/root/.cache/huggingface' }],
          }],
          volumes: [
            // NCCL between tensor-parallel workers needs more shared memory than the 64 MiB default.
            { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } },
            { name: 'models', hostPath: { path: '/var/lib/velox/models', type: 'DirectoryOrCreate' } },
          ],
        },
      },
    },
  }
}

/** Headless: DNS returns every ready vLLM pod, and the gateway balances across them itself. */
export function vllmService(): types.input.core.v1.Service {
  return {
    metadata: { name: VLLM_NAME, namespace: NAMESPACE, labels: vllmLabels },
    spec: { clusterIP: 'None', selector: vllmLabels, ports: [{ name: 'http', port: VLLM_PORT, targetPort: VLLM_PORT }] },
  }
}

/** The NVIDIA device plugin: advertises `nvidia.com/gpu` on the NVIDIA AMI's nodes. */
export function nvidiaDevicePlugin(s: { readonly nodeSelector: Record<string, string>; readonly gpuTaint: { readonly key: string; readonly value: string } }): types.input.apps.v1.DaemonSet {
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
          nodeSelector: s.nodeSelector,
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
  readonly redisPassword: boolean
  readonly nodeSelector: Record<string, string>
  /** Requested CPU: the HPA's utilisation is measured against it. */
  readonly cpu: string
  readonly memory: string
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
        metadata: { labels: gatewayLabels, annotations: { [CONFIG_HASH_ANNOTATION]: s.configHash } },
        spec: {
          hostNetwork: true,
          // Host networking would otherwise use the node's resolver and miss cluster DNS (vllm.velox.svc).
          dnsPolicy: 'ClusterFirstWithHostNet',
          nodeSelector: s.nodeSelector,
          // Above the gateway's 30 s drain (server.shutdownTimeoutMs) plus the preStop pause.
          terminationGracePeriodSeconds: 45,
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: gatewayLabels } },
            { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: gatewayLabels } },
          ],
          containers: [{
            name: GATEWAY_NAME,
            image: s.image,
            args: ['--config', GATEWAY_CONFIG_PATH],
            ports: [{ name: 'http', containerPort: GATEWAY_PORT, hostPort: GATEWAY_PORT, protocol: 'TCP' }],
            env: s.redisPassword ? [{ name: REDIS_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: REDIS_SECRET_NAME, key: 'password' } } }] : [],
            resources: { requests: { cpu: s.cpu, memory: s.memory }, limits: { memory: s.memory } },
            readinessProbe: { httpGet: { path: '/readyz', port: GATEWAY_PORT }, periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 1 },
            livenessProbe: { httpGet: { path: '/healthz', port: GATEWAY_PORT }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 },
            // Keep serving while the load balancer deregisters the target, then drain.
            lifecycle: { preStop: { sleep: { seconds: 10 } } },
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
}

export function listenerPort(certificateArn: string | undefined): number {
  return certificateArn ? 443 : 80
}

/** Service of type LoadBalancer: an internet-facing NLB in front of the gateway. */
export function gatewayService(s: LoadBalancerSpec): types.input.core.v1.Service {
  const port = listenerPort(s.certificateArn)
  const annotations: Record<string, string> = {
    'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb',
    'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing',
    // The gateway nodes share one AZ (placement group); NLB nodes in the other AZs must reach them.
    'service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled': 'true',
    'service.beta.kubernetes.io/aws-load-balancer-backend-protocol': 'tcp',
    'service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval': '10',
    'service.beta.kubernetes.io/aws-load-balancer-healthcheck-healthy-threshold': '2',
    'service.beta.kubernetes.io/aws-load-balancer-healthcheck-unhealthy-threshold': '2',
  }
  if (s.certificateArn) {
    annotations['service.beta.kubernetes.io/aws-load-balancer-ssl-cert'] = s.certificateArn
    annotations['service.beta.kubernetes.io/aws-load-balancer-ssl-ports'] = String(port)
    annotations['service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy'] = 'ELBSecurityPolicy-TLS13-1-2-2021-06'
  }
  return {
    metadata: { name: GATEWAY_NAME, namespace: NAMESPACE, labels: gatewayLabels, annotations },
    spec: {
      type: 'LoadBalancer',
      // Only nodes running a gateway pass the NLB health check: no extra kube-proxy hop between nodes.
      externalTrafficPolicy: 'Local',
      loadBalancerSourceRanges: [...s.sourceRanges],
      selector: gatewayLabels,
      ports: [{ name: s.certificateArn ? 'https' : 'http', port, targetPort: GATEWAY_PORT, protocol: 'TCP' }],
    },
  }
}
