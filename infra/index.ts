/**
 * Velox in one AWS region: `pulumi up` on stack `<stage>-<region>`. Stack config is read and
 * validated once (infra/config.ts) before anything is declared; every component gets the
 * region's explicit AWS provider; the gateway config is rendered from stack outputs by a pure
 * function and validated against the gateway's own schema.
 */
import * as aws from '@pulumi/aws'
import * as pulumi from '@pulumi/pulumi'
import { loadStackConfig } from './config.ts'
import { Cache } from './components/cache.ts'
import { Cluster } from './components/cluster.ts'
import { RegionalDns, regionalName } from './components/dns.ts'
import { GATEWAY_NODE_LABEL, GatewayNodes } from './components/gateway-nodes.ts'
import { GPU_TAINT, INFERENCE_NODE_LABEL, InferenceNodes } from './components/inference-nodes.ts'
import { Network } from './components/network.ts'
import { Workloads } from './components/workloads.ts'
import { ClusterAddons } from './components/cluster-addons.ts'
import { renderGatewayConfig } from './lib/gateway-config.ts'
import { NLB_IDLE_TIMEOUT_SECONDS, inferenceUrl, listenerPort } from './lib/manifests.ts'
import { baseName, baseTags } from './lib/naming.ts'
import { gatewaySizing, vllmSizing } from './lib/sizing.ts'
import { hashKey } from '../gateway/src/auth/authenticator.ts'

const { config: cfg, cacheAuthToken, hfToken, peerApiKey } = loadStackConfig()
const gatewaySize = gatewaySizing(cfg.gatewayInstanceType, cfg.gatewayWorkers)
const name = baseName(cfg)

const provider = new aws.Provider(`aws-${cfg.region}`, { region: cfg.region as aws.Region, defaultTags: { tags: baseTags(cfg, cfg.tags) } })
const opts: pulumi.ComponentResourceOptions = { providers: [provider] }

const network = new Network(`${name}-net`, {
  clusterName: name,
  ...(cfg.existingVpc ? { existingVpc: cfg.existingVpc } : { vpc: cfg.vpc }),
}, opts)

const cluster = new Cluster(`${name}-cluster`, {
  clusterName: name,
  region: cfg.region,
  kubernetesVersion: cfg.kubernetesVersion,
  subnetIds: network.privateSubnetIds,
  endpointPublicCidrs: cfg.clusterEndpointPublicCidrs,
}, opts)

// Both node groups live in the first private subnet's AZ, inside one cluster placement group.
const placementSubnetId = network.privateSubnetIds[0]!
const gatewayNodes = new GatewayNodes(`${name}-gateway`, {
  clusterName: cluster.name,
  kubernetesVersion: cfg.kubernetesVersion,
  nodeRoleArn: cluster.nodeRoleArn,
  securityGroupIds: [cluster.clusterSecurityGroupId],
  subnetId: placementSubnetId,
  instanceType: cfg.gatewayInstanceType,
  nodes: cfg.gatewayNodes,
  busyPollMicros: cfg.busyPollMicros,
}, opts)

const inferenceNodes = new InferenceNodes(`${name}-inference`, {
  clusterName: cluster.name,
  kubernetesVersion: cfg.kubernetesVersion,
  nodeRoleArn: cluster.nodeRoleArn,
  securityGroupIds: [cluster.clusterSecurityGroupId],
  subnetId: placementSubnetId,
  placementGroupName: gatewayNodes.placementGroupName,
  instanceType: cfg.inferenceInstanceType,
  nodes: cfg.inferenceNodes,
}, opts)

const cache = new Cache(`${name}-cache`, {
  replicationGroupId: name,
  vpcId: network.vpcId,
  subnetIds: network.privateSubnetIds,
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
}, { ...opts, dependsOn: [gatewayNodes, inferenceNodes, ...addons.ready] })

const dns = new RegionalDns(`${name}-dns`, {
  hostedZoneId: cfg.hostedZoneId,
  domain: cfg.domain,
  region: cfg.region,
  loadBalancerHostname: workloads.loadBalancerHostname,
  tls: cfg.certificateArn !== undefined,
  intervalSeconds: cfg.healthCheckIntervalSeconds,
  failureThreshold: cfg.healthCheckFailureThreshold,
}, opts)

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
export const gatewayConfigHash = gatewayConfig.hash
export const kubeconfig = cluster.kubeconfig
