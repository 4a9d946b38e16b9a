/**
 * Velox in one AWS region: `pulumi up` on stack `<stage>-<region>` (index.ts dispatches here). Stack config is read and
 * validated once (infra/config.ts) before anything is declared; every component gets the
 * region's explicit AWS provider; the gateway config is rendered from stack outputs by a pure
 * function and validated against the gateway's own schema.
 */
import { Provider } from '@pulumi/aws/provider.js'
import type { Region } from '@pulumi/aws/types/enums/index.js'
import * as pulumi from '@pulumi/pulumi'
import { loadStackConfig } from './config.ts'
import { AcceleratorEndpoint } from './components/accelerator-endpoint.ts'
import { Cache } from './components/cache.ts'
import { EksAddons } from './components/addons.ts'
import { Cluster } from './components/cluster.ts'
import { RegionalDns, latencyName, regionalName } from './components/dns.ts'
import { GATEWAY_NODE_LABEL, GatewayNodes } from './components/gateway-nodes.ts'
import { GPU_TAINT, INFERENCE_NODE_LABEL, InferenceNodes, SEMANTIC_NODE_LABEL } from './components/inference-nodes.ts'
import { Monitoring } from './components/monitoring.ts'
import { Network } from './components/network.ts'
import { Workloads } from './components/workloads.ts'
import { ClusterAddons } from './components/cluster-addons.ts'
import { renderGatewayConfig } from './lib/gateway-config.ts'
import { NAMESPACE, NLB_IDLE_TIMEOUT_SECONDS, inferenceUrl, listenerPort, semanticModelName, type VllmSpec } from './lib/manifests.ts'
import { baseName, baseTags } from './lib/naming.ts'
import { gatewaySizing, vllmSizing } from './lib/sizing.ts'
import { hashKey } from '../gateway/src/auth/authenticator.ts'
import { NODE_ADDONS, WORKLOAD_ADDONS } from './lib/cluster-access.ts'
import { enaExpressApplies, instanceType } from './lib/instance-types.ts'

const { config: cfg, cacheAuthToken, hfToken, peerApiKey } = loadStackConfig()
const gatewaySize = gatewaySizing(cfg.gatewayInstanceType, cfg.gatewayWorkers)
const name = baseName(cfg)

const provider = new Provider(`aws-${cfg.region}`, { region: cfg.region as Region, defaultTags: { tags: baseTags(cfg, cfg.tags) } })
const opts: pulumi.ComponentResourceOptions = { providers: [provider] }

const semantic = cfg.semanticCache
const enaExpress = enaExpressApplies(cfg.gatewayInstanceType, cfg.inferenceInstanceType)
const network = new Network(`${name}-net`, {
  clusterName: name,
  region: cfg.region,
  instanceTypes: [cfg.gatewayInstanceType, cfg.inferenceInstanceType, ...(semantic.enabled ? [semantic.instanceType] : [])],
  ...(cfg.existingVpc ? { existingVpc: cfg.existingVpc } : { vpc: cfg.vpc }),
}, opts)

const cluster = new Cluster(`${name}-cluster`, {
  clusterName: name,
  region: cfg.region,
  kubernetesVersion: cfg.kubernetesVersion,
  subnetIds: network.privateSubnetIds,
  endpointPublicCidrs: cfg.clusterEndpointPublicCidrs,
  endpointPrivateCidrs: cfg.clusterEndpointPrivateCidrs,
  access: cfg.clusterAccess,
}, opts)

// Pod networking, service routing and pod identity must be running before a node can be Ready.
const nodeAddons = new EksAddons(`${name}-eks-addons`, { clusterName: cluster.name, kubernetesVersion: cfg.kubernetesVersion, addons: NODE_ADDONS }, opts)

// One node group per AZ for each role; inference nodes share the gateways' AZs and subnets.
const zones = network.privateSubnetIds.map((subnetId, i) => ({ subnetId, zone: network.zones[i]! }))
const gatewayNodes = new GatewayNodes(`${name}-gateway`, {
  clusterName: cluster.name,
  kubernetesVersion: cfg.kubernetesVersion,
  nodeRoleArn: cluster.nodeRoleArn,
  securityGroupIds: [cluster.clusterSecurityGroupId],
  zones,
  instanceType: cfg.gatewayInstanceType,
  nodes: cfg.gatewayNodes,
  busyPollMicros: cfg.busyPollMicros,
  enaExpress,
}, { ...opts, dependsOn: [nodeAddons] })

const inferenceNodes = new InferenceNodes(`${name}-inference`, {
  clusterName: cluster.name,
  kubernetesVersion: cfg.kubernetesVersion,
  nodeRoleArn: cluster.nodeRoleArn,
  securityGroupIds: [cluster.clusterSecurityGroupId],
  zones,
  instanceType: cfg.inferenceInstanceType,
  nodes: cfg.inferenceNodes,
  enaExpress,
}, { ...opts, dependsOn: [nodeAddons] })

// The semantic cache's models: one GPU node per model replica, in the gateways' AZs.
const semanticNodes = semantic.enabled ? new InferenceNodes(`${name}-semantic`, {
  clusterName: cluster.name,
  kubernetesVersion: cfg.kubernetesVersion,
  nodeRoleArn: cluster.nodeRoleArn,
  securityGroupIds: [cluster.clusterSecurityGroupId],
  zones,
  instanceType: semantic.instanceType,
  nodes: (() => {
    const n = semantic.embedding.replicas + semantic.reranker.replicas
    return { min: n, desired: n, max: n }
  })(),
  enaExpress: enaExpress && (instanceType(semantic.instanceType)?.enaExpress ?? false),
  labels: SEMANTIC_NODE_LABEL,
  // Embedding models and rerankers weigh a few GB.
  rootVolumeGiB: 100,
}, { ...opts, dependsOn: [nodeAddons] }) : undefined

// CoreDNS is a Deployment: it goes ACTIVE only once there are nodes to run it.
const dnsAddons = new EksAddons(`${name}-coredns`, { clusterName: cluster.name, kubernetesVersion: cfg.kubernetesVersion, addons: WORKLOAD_ADDONS }, { ...opts, dependsOn: [gatewayNodes] })

const cache = new Cache(`${name}-cache`, {
  replicationGroupId: name,
  vpcId: network.vpcId,
  subnetIds: network.privateSubnetIds,
  zones: network.zones,
  clientSecurityGroupIds: [cluster.clusterSecurityGroupId],
  nodeType: cfg.cacheNodeType,
  nodes: cfg.cacheNodes,
  engineVersion: cfg.cacheEngineVersion,
  ...(cacheAuthToken ? { authToken: cacheAuthToken } : {}),
  snapshotRetentionDays: cfg.stage === 'prod' ? 7 : 0,
}, opts)

const peerKeyHash = peerApiKey !== undefined ? peerApiKey.apply(hashKey) : pulumi.output(undefined)
const gatewayConfig = pulumi.all([cache.primaryEndpoint, peerKeyHash]).apply(([host, peerHash]) => renderGatewayConfig({
  inferenceUrl: inferenceUrl(),
  model: cfg.model,
  cache: { host, port: cache.port, tls: cache.tls, authToken: cache.authToken },
  pool: cfg.pool,
  timeouts: cfg.timeouts,
  fallbackUpstreams: cfg.fallbackUpstreams,
  workers: gatewaySize.workers,
  logLevel: cfg.logLevel,
  redisCommandTimeoutMs: cfg.redisCommandTimeoutMs,
  loadBalancerIdleTimeoutSeconds: NLB_IDLE_TIMEOUT_SECONDS,
  stage: cfg.stage,
  apiKeys: cfg.apiKeys,
  ...(cfg.limits !== undefined ? { limits: cfg.limits } : {}),
  ...(peerHash !== undefined ? { peerKeyHash: peerHash } : {}),
  cacheMaxBytes: gatewaySize.cacheMaxBytes,
  shutdownTimeoutMs: cfg.gatewayDrainSeconds * 1000,
  ...(semantic.enabled ? {
    semantic: {
      embedding: { url: inferenceUrl(NAMESPACE, semanticModelName('embedding')), model: semantic.embedding.model },
      reranker: { url: inferenceUrl(NAMESPACE, semanticModelName('reranker')), model: semantic.reranker.model, minScore: semantic.reranker.minScore },
      ...(semantic.threshold !== undefined ? { threshold: semantic.threshold } : {}),
    },
  } : {}),
}))
if (cfg.stage !== 'dev' && cfg.fallbackUpstreams.length > 0 && peerApiKey === undefined) {
  pulumi.log.warn('velox:fallbackUpstreams is set but velox:peerApiKey is not: peer regions (auth on) will refuse the fallback calls')
}

// metrics-server, the AWS Load Balancer Controller and the Cluster Autoscaler; they need nodes to run on.
const addons = new ClusterAddons(`${name}-addons`, {
  kubeconfig: cluster.kubeconfig,
  clusterName: cluster.name,
  kubernetesVersion: cfg.kubernetesVersion,
  region: cfg.region,
  vpcId: network.vpcId,
}, { ...opts, dependsOn: [gatewayNodes] })

/** An embedding model or reranker: vLLM's image, one GPU, sized and probed like the inference Deployment. */
function semanticModel(role: 'embedding' | 'reranker'): Omit<VllmSpec, 'hfToken'> {
  return {
    image: cfg.vllmImage,
    model: semantic[role].model,
    replicas: semantic[role].replicas,
    gpus: 1,
    extraArgs: semantic[role].extraArgs,
    nodeSelector: { ...SEMANTIC_NODE_LABEL },
    gpuTaint: GPU_TAINT,
    resources: vllmSizing(semantic.instanceType),
    startupSeconds: cfg.vllmStartupSeconds,
    drainSeconds: cfg.gatewayDrainSeconds,
  }
}

const workloads = new Workloads(`${name}-apps`, {
  provider: addons.provider,
  gateway: {
    image: cfg.gatewayImage,
    // The hash leaves the auth section out, the only part derived from a secret (the peer key).
    config: { yaml: gatewayConfig.yaml, hash: pulumi.unsecret(gatewayConfig.hash) },
    nodeSelector: { ...GATEWAY_NODE_LABEL },
    replicas: cfg.gatewayReplicas,
    targetCpu: cfg.gatewayTargetCpu,
    cpu: gatewaySize.cpu,
    memory: gatewaySize.memory,
    drainSeconds: cfg.gatewayDrainSeconds,
    ...(cacheAuthToken ? { redisPassword: cacheAuthToken } : {}),
    ...(peerApiKey ? { peerApiKey } : {}),
  },
  loadBalancer: { ...(cfg.certificateArn ? { certificateArn: cfg.certificateArn } : {}), sourceRanges: cfg.loadBalancerSourceRanges },
  vllm: {
    image: cfg.vllmImage,
    model: cfg.model,
    replicas: cfg.inferenceNodes.desired,
    gpus: inferenceNodes.gpusPerNode,
    extraArgs: cfg.vllmExtraArgs,
    nodeSelector: { ...INFERENCE_NODE_LABEL },
    gpuTaint: GPU_TAINT,
    resources: vllmSizing(cfg.inferenceInstanceType),
    startupSeconds: cfg.vllmStartupSeconds,
    drainSeconds: cfg.gatewayDrainSeconds,
    ...(hfToken ? { hfToken } : {}),
  },
  ...(semanticNodes ? { semantic: { embedding: semanticModel('embedding'), reranker: semanticModel('reranker') } } : {}),
}, { ...opts, dependsOn: [gatewayNodes, inferenceNodes, ...(semanticNodes ? [semanticNodes] : []), dnsAddons, ...addons.ready] })

// Rules, scrape and dashboard for the cluster's monitoring stack (velox:monitoring).
new Monitoring(`${name}-monitoring`, { provider: addons.provider, spec: cfg.monitoring }, { ...opts, dependsOn: [workloads] })
if (cfg.stage !== 'dev' && !cfg.monitoring.prometheusOperator) {
  pulumi.log.warn('velox:monitoring.prometheusOperator is off: no alert rules and no scrape of the gateways are deployed (see docs/observability.md)')
}

// With a global stack, <domain> is the accelerator's alias (global.ts) and the latency-routed
// records move to latency.<domain>: the DNS path stays, as a name to fail back to.
const globalStack = cfg.globalStack ? new pulumi.StackReference(cfg.globalStack) : undefined
const dns = new RegionalDns(`${name}-dns`, {
  hostedZoneId: cfg.hostedZoneId,
  domain: cfg.domain,
  latencyName: globalStack ? latencyName(cfg.domain) : cfg.domain,
  region: cfg.region,
  loadBalancerHostname: workloads.loadBalancerHostname,
  tls: cfg.certificateArn !== undefined,
  intervalSeconds: cfg.healthCheckIntervalSeconds,
  failureThreshold: cfg.healthCheckFailureThreshold,
}, opts)

const accelerator = globalStack ? new AcceleratorEndpoint(`${name}-edge`, {
  listenerArn: globalStack.requireOutput('listenerArn').apply(String),
  region: cfg.region,
  loadBalancerHostname: workloads.loadBalancerHostname,
  tls: cfg.certificateArn !== undefined,
  trafficDialPercentage: cfg.acceleratorTrafficDial,
}, opts) : undefined

const scheme = cfg.certificateArn ? 'https' : 'http'
const port = listenerPort(cfg.certificateArn)
const portSuffix = (scheme === 'https' && port === 443) || (scheme === 'http' && port === 80) ? '' : `:${port}`

// What peers, promotion and operators read from this stack.
export const stage = cfg.stage
export const region = cfg.region
export const clusterName = cluster.name
export const gatewayImage = cfg.gatewayImage
export const publicUrl = `${scheme}://${cfg.domain}${portSuffix}`
/** The name peer regions list in velox:fallbackUpstreams. */
export const regionalUrl = `${scheme}://${regionalName(cfg.region, cfg.domain)}${portSuffix}`
export const loadBalancerHostname = workloads.loadBalancerHostname
export const healthCheckId = dns.healthCheckId
export const cacheEndpoint = cache.primaryEndpoint
export const cacheReaderEndpoint = cache.readerEndpoint
export const zoneNames = pulumi.all(network.zones)
export const clusterAccessPrincipals = cluster.accessPrincipals
export const addonVersions = pulumi.all({ ...nodeAddons.versions, ...dnsAddons.versions })
export const gatewayConfigHash = gatewayConfig.hash
export const kubeconfig = cluster.kubeconfig
export const acceleratorEndpointGroupArn = accelerator?.endpointGroupArn
export const latencyUrl = `${scheme}://${globalStack ? latencyName(cfg.domain) : cfg.domain}${portSuffix}`
