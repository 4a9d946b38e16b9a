/**
 * CrossGuard policies for the Velox stacks, typed against @pulumi/policy. They only read a
 * resource's type, URN (for the stack's stage) and props, so tests call them directly with the
 * inputs the program declares under mocks. index.js wraps them in a PolicyPack for
 * `pulumi preview --policy-pack infra/policy` (test/infra/policy-runner.test.ts runs it under
 * Pulumi's own policy runner).
 */
import type { ReportViolation, ResourceValidationArgs, ResourceValidationPolicy } from '@pulumi/policy'
import { parse } from 'yaml'
import { instanceType } from '../lib/instance-types.ts'
import { ADMIN_PORT } from '../lib/monitoring.ts'

/** The subset of ResourceValidationArgs the policies read (what tests construct). */
export type PolicyArgs = Pick<ResourceValidationArgs, 'type' | 'props' | 'urn' | 'name'>
export type VeloxPolicy = Omit<ResourceValidationPolicy, 'validateResource'> & {
  validateResource: (args: PolicyArgs, reportViolation: ReportViolation) => void
}

const OPEN = ['0.0.0.0/0', '::/0']
/** Ports the load balancer listener may expose to the internet. */
const LISTENER_PORTS = [80, 443]

/** `urn:pulumi:<stack>::<project>::...` -> the stage prefix of `<stage>-<region>`. */
export function stageOf(urn: string): string {
  const stack = urn.split('::')[0]?.split(':').pop() ?? ''
  return stack.split('-')[0] ?? ''
}

function isGatewayRole(labelsOrTags: unknown): boolean {
  return typeof labelsOrTags === 'object' && labelsOrTags !== null && (labelsOrTags as Record<string, unknown>)['velox.dev/role'] === 'gateway'
}

function truthy(v: unknown): boolean {
  return v === true || v === 'true'
}

export const gatewayNodesEnaPlacement: VeloxPolicy = {
  name: 'gateway-nodes-ena-placement',
  description: 'Gateway nodes are ENA-capable, network-optimised instances launched into a cluster placement group.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type === 'aws:ec2/placementGroup:PlacementGroup' && props['strategy'] !== 'cluster') {
      report(`placement group strategy is "${String(props['strategy'])}"; the gateway needs "cluster"`)
    }
    if (type === 'aws:eks/nodeGroup:NodeGroup' && isGatewayRole(props['labels'])) {
      const types: string[] = props['instanceTypes'] ?? []
      if (types.length === 0) report('gateway node group does not name its instance types')
      for (const t of types) {
        const info = instanceType(t)
        if (!info?.ena) report(`gateway instance type "${t}" is not ENA-capable`)
        else if (!info.networkOptimized) report(`gateway instance type "${t}" is not network-optimised`)
      }
      if (!props['launchTemplate']) report('gateway node group has no launch template (placement group and tuning live there)')
    }
    if (type === 'aws:ec2/launchTemplate:LaunchTemplate') {
      const specs: { tags?: Record<string, string> }[] = props['tagSpecifications'] ?? []
      if (specs.some((s) => isGatewayRole(s.tags)) && !props['placement']?.['groupName']) {
        report('gateway launch template is not in a placement group')
      }
    }
  },
}

export const cacheEncryptedInTransit: VeloxPolicy = {
  name: 'cache-encrypted-in-transit',
  description: 'ElastiCache replication groups require TLS in transit and encrypt at rest.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type !== 'aws:elasticache/replicationGroup:ReplicationGroup') return
    if (!truthy(props['transitEncryptionEnabled'])) report('transitEncryptionEnabled must be true')
    if (props['transitEncryptionMode'] !== undefined && props['transitEncryptionMode'] !== 'required') report('transitEncryptionMode must be "required"')
    if (!truthy(props['atRestEncryptionEnabled'])) report('atRestEncryptionEnabled must be true')
  },
}

export const prodMultiAz: VeloxPolicy = {
  name: 'prod-multi-az',
  description: 'In prod stacks the cache fails over across AZs and the cluster and cache span at least two AZs.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props, urn }, report) => {
    if (stageOf(urn) !== 'prod') return
    if (type === 'aws:elasticache/replicationGroup:ReplicationGroup') {
      if (!truthy(props['multiAzEnabled'])) report('prod cache must set multiAzEnabled')
      if (!truthy(props['automaticFailoverEnabled'])) report('prod cache must set automaticFailoverEnabled')
      if (Number(props['numCacheClusters'] ?? 1) < 2) report('prod cache needs at least 2 nodes')
    }
    if (type === 'aws:elasticache/subnetGroup:SubnetGroup' && (props['subnetIds'] ?? []).length < 2) report('prod cache subnet group must span at least 2 subnets (AZs)')
    if (type === 'aws:eks/cluster:Cluster' && (props['vpcConfig']?.['subnetIds'] ?? []).length < 2) report('prod cluster must span at least 2 subnets (AZs)')
    // Gateway node groups are per AZ (the program declares one in each of at least 3 AZs in prod):
    // each must keep a node, so losing an AZ leaves the others serving.
    if (type === 'aws:eks/nodeGroup:NodeGroup' && isGatewayRole(props['labels']) && Number(props['scalingConfig']?.['minSize'] ?? 0) < 1) {
      report('prod gateway node group (one per AZ) needs at least 1 node')
    }
    if (type === 'aws:eks/nodeGroup:NodeGroup' && (props['subnetIds'] ?? []).length !== 1) report('node groups are per AZ: exactly one subnet')
  },
}

function openCidrs(list: unknown): string[] {
  return Array.isArray(list) ? list.filter((c): c is string => OPEN.includes(c)) : []
}

export const noOpenIngress: VeloxPolicy = {
  name: 'no-open-ingress',
  description: 'Nothing accepts traffic from 0.0.0.0/0 except the load balancer listener (80/443).',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type === 'aws:ec2/securityGroup:SecurityGroup') {
      for (const rule of (props['ingress'] ?? []) as Record<string, unknown>[]) {
        const open = [...openCidrs(rule['cidrBlocks']), ...openCidrs(rule['ipv6CidrBlocks'])]
        if (open.length > 0) report(`security group allows ${open.join(', ')} on ports ${String(rule['fromPort'])}-${String(rule['toPort'])}`)
      }
    }
    if (type === 'aws:ec2/securityGroupRule:SecurityGroupRule' && props['type'] === 'ingress') {
      const open = [...openCidrs(props['cidrBlocks']), ...openCidrs(props['ipv6CidrBlocks'])]
      if (open.length > 0) report(`security group rule allows ${open.join(', ')}`)
    }
    if (type === 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule' && (OPEN.includes(props['cidrIpv4']) || OPEN.includes(props['cidrIpv6']))) {
      report('security group ingress rule is open to the internet')
    }
    if (type === 'aws:eks/cluster:Cluster' && truthy(props['vpcConfig']?.['endpointPublicAccess'])) {
      const cidrs = props['vpcConfig']?.['publicAccessCidrs']
      if (cidrs === undefined || openCidrs(cidrs).length > 0) report('public Kubernetes API endpoint is open to 0.0.0.0/0; set velox:clusterEndpointPublicCidrs')
    }
    if (type === 'kubernetes:core/v1:Service') {
      const spec = props['spec'] ?? {}
      const kind = spec['type'] ?? 'ClusterIP'
      if (kind === 'NodePort') report('NodePort services expose every node; use the load balancer')
      if (kind === 'LoadBalancer') {
        const ranges = spec['loadBalancerSourceRanges']
        const open = ranges === undefined || ranges.length === 0 || openCidrs(ranges).length > 0
        const ports: number[] = (spec['ports'] ?? []).map((p: Record<string, unknown>) => Number(p['port']))
        const extra = ports.filter((p) => !LISTENER_PORTS.includes(p))
        if (open && extra.length > 0) report(`load balancer opens ports ${extra.join(', ')} to the internet; only ${LISTENER_PORTS.join('/')} may be`)
      }
    }
  },
}

export const noPublicSsh: VeloxPolicy = {
  name: 'no-public-ssh',
  description: 'Nodes have no SSH key, no remote access, no public address and no port 22 ingress; use SSM.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type === 'aws:ec2/launchTemplate:LaunchTemplate') {
      if (props['keyName']) report('launch template sets an SSH key')
      for (const ni of (props['networkInterfaces'] ?? []) as Record<string, unknown>[]) {
        if (truthy(ni['associatePublicIpAddress'])) report('launch template gives nodes a public IP')
      }
    }
    if (type === 'aws:eks/nodeGroup:NodeGroup' && props['remoteAccess']) report('node group enables SSH remote access')
    if (type === 'aws:ec2/securityGroup:SecurityGroup') {
      for (const rule of (props['ingress'] ?? []) as Record<string, unknown>[]) {
        const from = Number(rule['fromPort']), to = Number(rule['toPort'])
        if ((from <= 22 && to >= 22) || rule['protocol'] === '-1') {
          if (openCidrs(rule['cidrBlocks']).length > 0) report('security group opens SSH to the internet')
        }
      }
    }
  },
}

export const imdsV2Required: VeloxPolicy = {
  name: 'imdsv2-required',
  description: 'Launch templates require IMDSv2 session tokens.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type !== 'aws:ec2/launchTemplate:LaunchTemplate') return
    if (props['metadataOptions']?.['httpTokens'] !== 'required') report('metadataOptions.httpTokens must be "required" (IMDSv2)')
  },
}

export const loadBalancerController: VeloxPolicy = {
  name: 'load-balancer-controller',
  description: 'LoadBalancer Services belong to the AWS Load Balancer Controller (loadBalancerClass service.k8s.aws/nlb), not the in-tree provider.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type !== 'kubernetes:core/v1:Service' || props['spec']?.['type'] !== 'LoadBalancer') return
    if (props['spec']['loadBalancerClass'] !== 'service.k8s.aws/nlb') {
      report('LoadBalancer Service without loadBalancerClass "service.k8s.aws/nlb": the in-tree provider would build it and ignore most NLB annotations')
    }
  },
}

/** The gateway's rendered config file, from the ConfigMap the program declares. */
function gatewayConfigOf(props: Record<string, any>): Record<string, any> | null {
  const text = props['data']?.['gateway.yaml']
  if (typeof text !== 'string') return null
  try { return parse(text) as Record<string, any> } catch { return null }
}

export const gatewayAuthOutsideDev: VeloxPolicy = {
  name: 'gateway-auth-outside-dev',
  description: 'Outside dev the gateway config lists client API keys (auth on) and never serves simulated completions.',
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props, urn }, report) => {
    if (type !== 'kubernetes:core/v1:ConfigMap' || stageOf(urn) === 'dev') return
    const config = gatewayConfigOf(props)
    if (config === null) return
    const keys = config['auth']?.['keys']
    if (!Array.isArray(keys) || keys.length === 0) report(`the gateway config has no auth.keys: a ${stageOf(urn)} gateway would answer anyone`)
    if (config['simulator']?.['enabled'] !== false) report('the gateway config does not turn the built-in simulator off')
  },
}

export const gatewayAdminPrivate: VeloxPolicy = {
  name: 'gateway-admin-private',
  description: `The gateway's admin listener (port ${ADMIN_PORT}: metrics, profiles, drain, purge, reload) is never behind a load balancer or node port, and Prometheus scrapes it with the admin token.`,
  enforcementLevel: 'mandatory',
  validateResource: ({ type, props }, report) => {
    if (type === 'kubernetes:core/v1:Service') {
      const kind = props['spec']?.['type']
      if (kind !== 'LoadBalancer' && kind !== 'NodePort') return
      const ports: { port?: unknown; targetPort?: unknown }[] = props['spec']?.['ports'] ?? []
      if (ports.some((p) => Number(p.port) === ADMIN_PORT || Number(p.targetPort) === ADMIN_PORT || p.targetPort === 'admin')) {
        report(`a ${kind} Service exposes the admin port ${ADMIN_PORT}; only the headless gateway-admin Service may select it`)
      }
    }
    if (type === 'kubernetes:monitoring.coreos.com/v1:ServiceMonitor') {
      const endpoints: Record<string, any>[] = props['spec']?.['endpoints'] ?? []
      for (const e of endpoints) {
        const fromSecret = e['authorization']?.['credentials']?.['name'] !== undefined
        if (!fromSecret) report(`ServiceMonitor endpoint "${String(e['port'] ?? e['targetPort'] ?? '?')}" scrapes without the admin token from a Secret (authorization.credentials): the admin listener refuses it`)
      }
    }
  },
}

export const POLICIES: readonly VeloxPolicy[] = [gatewayNodesEnaPlacement, cacheEncryptedInTransit, prodMultiAz, noOpenIngress, noPublicSsh, imdsV2Required, loadBalancerController, gatewayAuthOutsideDev, gatewayAdminPrivate]

/** Runs every policy on one resource; returns `policy: message` lines. */
export function checkResource(args: PolicyArgs): string[] {
  const out: string[] = []
  for (const p of POLICIES) p.validateResource(args, (message) => { out.push(`${p.name}: ${message}`) })
  return out
}
