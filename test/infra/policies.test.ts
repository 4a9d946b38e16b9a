import { test } from 'node:test'
import assert from 'node:assert/strict'
import { POLICIES, cacheEncryptedInTransit, checkResource, gatewayAdminPrivate, gatewayAuthOutsideDev, gatewayNodesEnaPlacement, imdsV2Required, loadBalancerController, noOpenIngress, noPublicSsh, prodMultiAz, stageOf, type PolicyArgs, type VeloxPolicy } from '../../infra/policy/policies.ts'

const urn = (stack: string, type: string) => `urn:pulumi:${stack}::velox::${type}::r`
function violations(policy: VeloxPolicy, type: string, props: Record<string, unknown>, stack = 'dev-us-east-1'): string[] {
  const out: string[] = []
  const args: PolicyArgs = { type, props, urn: urn(stack, type), name: 'r' }
  policy.validateResource(args, (m) => { out.push(m) })
  return out
}

test('every policy is mandatory, named and described', () => {
  assert.equal(POLICIES.length, 9)
  for (const p of POLICIES) {
    assert.equal(p.enforcementLevel, 'mandatory')
    assert.match(p.name, /^[a-z0-9-]+$/)
    assert.ok(p.description.length > 10)
  }
  assert.equal(stageOf('urn:pulumi:prod-eu-west-1::velox::aws:ec2/vpc:Vpc::x'), 'prod')
})

test('gateway nodes must be ENA, network-optimised, in a cluster placement group', () => {
  const ng = 'aws:eks/nodeGroup:NodeGroup'
  assert.deepEqual(violations(gatewayNodesEnaPlacement, ng, { labels: { 'velox.dev/role': 'gateway' }, instanceTypes: ['c7gn.large'], launchTemplate: { id: 'lt' } }), [])
  assert.match(violations(gatewayNodesEnaPlacement, ng, { labels: { 'velox.dev/role': 'gateway' }, instanceTypes: ['t2.medium'], launchTemplate: { id: 'lt' } })[0]!, /not ENA-capable/)
  assert.match(violations(gatewayNodesEnaPlacement, ng, { labels: { 'velox.dev/role': 'gateway' }, instanceTypes: ['m6i.large'] }).join(), /not network-optimised.*no launch template/)
  assert.deepEqual(violations(gatewayNodesEnaPlacement, ng, { labels: { 'velox.dev/role': 'inference' }, instanceTypes: ['g6e.xlarge'] }), [], 'only gateway nodes')
  assert.match(violations(gatewayNodesEnaPlacement, 'aws:ec2/placementGroup:PlacementGroup', { strategy: 'spread' })[0]!, /needs "cluster"/)
  const lt = 'aws:ec2/launchTemplate:LaunchTemplate'
  assert.match(violations(gatewayNodesEnaPlacement, lt, { tagSpecifications: [{ resourceType: 'instance', tags: { 'velox.dev/role': 'gateway' } }] })[0]!, /not in a placement group/)
  assert.deepEqual(violations(gatewayNodesEnaPlacement, lt, { placement: { groupName: 'pg' }, tagSpecifications: [{ resourceType: 'instance', tags: { 'velox.dev/role': 'gateway' } }] }), [])
})

test('caches encrypt in transit and at rest', () => {
  const rg = 'aws:elasticache/replicationGroup:ReplicationGroup'
  assert.deepEqual(violations(cacheEncryptedInTransit, rg, { transitEncryptionEnabled: true, atRestEncryptionEnabled: true, transitEncryptionMode: 'required' }), [])
  assert.deepEqual(violations(cacheEncryptedInTransit, rg, { transitEncryptionEnabled: true, atRestEncryptionEnabled: false, transitEncryptionMode: 'preferred' }).length, 2)
  assert.match(violations(cacheEncryptedInTransit, rg, {})[0]!, /transitEncryptionEnabled/)
})

test('prod is Multi-AZ; dev may be single-AZ', () => {
  const rg = 'aws:elasticache/replicationGroup:ReplicationGroup'
  const single = { multiAzEnabled: false, automaticFailoverEnabled: false, numCacheClusters: 1 }
  assert.deepEqual(violations(prodMultiAz, rg, single, 'dev-us-east-1'), [])
  assert.equal(violations(prodMultiAz, rg, single, 'prod-us-east-1').length, 3)
  assert.deepEqual(violations(prodMultiAz, rg, { multiAzEnabled: true, automaticFailoverEnabled: true, numCacheClusters: 2 }, 'prod-us-east-1'), [])
  assert.match(violations(prodMultiAz, 'aws:eks/cluster:Cluster', { vpcConfig: { subnetIds: ['a'] } }, 'prod-eu-west-1')[0]!, /2 subnets/)
  assert.match(violations(prodMultiAz, 'aws:eks/nodeGroup:NodeGroup', { labels: { 'velox.dev/role': 'gateway' }, scalingConfig: { minSize: 0 }, subnetIds: ['subnet-1'] }, 'prod-eu-west-1')[0]!, /\(one per AZ\) needs at least 1 node/)
  assert.deepEqual(violations(prodMultiAz, 'aws:eks/nodeGroup:NodeGroup', { labels: { 'velox.dev/role': 'gateway' }, scalingConfig: { minSize: 1 }, subnetIds: ['subnet-1'] }, 'prod-eu-west-1'), [])
  assert.match(violations(prodMultiAz, 'aws:eks/nodeGroup:NodeGroup', { labels: { 'velox.dev/role': 'gateway' }, scalingConfig: { minSize: 1 }, subnetIds: ['subnet-1', 'subnet-2'] }, 'prod-eu-west-1')[0]!, /exactly one subnet/)
})

test('0.0.0.0/0 ingress only on the load balancer listener', () => {
  const sg = 'aws:ec2/securityGroup:SecurityGroup'
  assert.match(violations(noOpenIngress, sg, { ingress: [{ fromPort: 6379, toPort: 6379, cidrBlocks: ['0.0.0.0/0'] }] })[0]!, /0\.0\.0\.0\/0 on ports 6379-6379/)
  assert.deepEqual(violations(noOpenIngress, sg, { ingress: [{ fromPort: 6379, toPort: 6379, securityGroups: ['sg-1'] }], egress: [{ cidrBlocks: ['0.0.0.0/0'] }] }), [])
  assert.equal(violations(noOpenIngress, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule', { cidrIpv4: '0.0.0.0/0' }).length, 1)
  assert.equal(violations(noOpenIngress, 'aws:ec2/securityGroupRule:SecurityGroupRule', { type: 'ingress', ipv6CidrBlocks: ['::/0'] }).length, 1)
  assert.match(violations(noOpenIngress, 'aws:eks/cluster:Cluster', { vpcConfig: { endpointPublicAccess: true } })[0]!, /Kubernetes API/)
  assert.deepEqual(violations(noOpenIngress, 'aws:eks/cluster:Cluster', { vpcConfig: { endpointPublicAccess: true, publicAccessCidrs: ['203.0.113.0/24'] } }), [])
  const svc = 'kubernetes:core/v1:Service'
  assert.deepEqual(violations(noOpenIngress, svc, { spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['0.0.0.0/0'], ports: [{ port: 443 }] } }), [])
  assert.match(violations(noOpenIngress, svc, { spec: { type: 'LoadBalancer', ports: [{ port: 443 }, { port: 9090 }] } })[0]!, /ports 9090/)
  assert.deepEqual(violations(noOpenIngress, svc, { spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/8'], ports: [{ port: 9090 }] } }), [])
  assert.match(violations(noOpenIngress, svc, { spec: { type: 'NodePort', ports: [{ port: 80 }] } })[0]!, /NodePort/)
})

test('no public SSH and IMDSv2 on launch templates', () => {
  const lt = 'aws:ec2/launchTemplate:LaunchTemplate'
  assert.match(violations(noPublicSsh, lt, { keyName: 'ops' })[0]!, /SSH key/)
  assert.match(violations(noPublicSsh, lt, { networkInterfaces: [{ associatePublicIpAddress: 'true' }] })[0]!, /public IP/)
  assert.match(violations(noPublicSsh, 'aws:eks/nodeGroup:NodeGroup', { remoteAccess: { ec2SshKey: 'k' } })[0]!, /remote access/)
  assert.match(violations(noPublicSsh, 'aws:ec2/securityGroup:SecurityGroup', { ingress: [{ fromPort: 22, toPort: 22, cidrBlocks: ['0.0.0.0/0'] }] })[0]!, /SSH/)
  assert.deepEqual(violations(noPublicSsh, lt, { networkInterfaces: [{ associatePublicIpAddress: 'false' }] }), [])
  assert.match(violations(imdsV2Required, lt, { metadataOptions: { httpTokens: 'optional' } })[0]!, /IMDSv2/)
  assert.deepEqual(violations(imdsV2Required, lt, { metadataOptions: { httpTokens: 'required' } }), [])
  assert.equal(checkResource({ type: lt, props: {}, urn: urn('dev-us-east-1', lt), name: 'r' }).length, 1)
})


test('LoadBalancer Services go to the AWS Load Balancer Controller', () => {
  const svc = 'kubernetes:core/v1:Service'
  assert.match(violations(loadBalancerController, svc, { spec: { type: 'LoadBalancer', ports: [{ port: 443 }] } })[0]!, /in-tree provider/)
  assert.deepEqual(violations(loadBalancerController, svc, { spec: { type: 'LoadBalancer', loadBalancerClass: 'service.k8s.aws/nlb' } }), [])
  assert.deepEqual(violations(loadBalancerController, svc, { spec: { clusterIP: 'None' } }), [])
})

test('outside dev the gateway config has client keys and no simulator', () => {
  const cm = 'kubernetes:core/v1:ConfigMap'
  const open = { data: { 'gateway.yaml': 'server:\n  port: 8080\nsimulator:\n  enabled: false\n' } }
  const closed = { data: { 'gateway.yaml': `auth:\n  keys:\n    - { name: a, tenant: a, hash: "sha256:${'0'.repeat(64)}" }\nsimulator:\n  enabled: false\n` } }
  assert.match(violations(gatewayAuthOutsideDev, cm, open, 'prod-us-east-1')[0]!, /no auth\.keys: a prod gateway would answer anyone/)
  assert.deepEqual(violations(gatewayAuthOutsideDev, cm, open, 'dev-us-east-1'), [], 'dev may run without keys')
  assert.deepEqual(violations(gatewayAuthOutsideDev, cm, closed, 'staging-us-east-1'), [])
  assert.match(violations(gatewayAuthOutsideDev, cm, { data: { 'gateway.yaml': 'auth: { keys: [] }\n' } }, 'staging-us-east-1').join(), /no auth\.keys.*simulator/)
  assert.deepEqual(violations(gatewayAuthOutsideDev, cm, { data: { other: 'x' } }, 'prod-us-east-1'), [], 'other ConfigMaps are not gateway configs')
})

test('the admin port is never behind a load balancer or node port, and is scraped with the token', () => {
  const svc = 'kubernetes:core/v1:Service'
  assert.match(violations(gatewayAdminPrivate, svc, { spec: { type: 'LoadBalancer', ports: [{ port: 80, targetPort: 8080 }, { port: 9901, targetPort: 9901 }] } })[0]!, /exposes the admin port 9901/)
  assert.equal(violations(gatewayAdminPrivate, svc, { spec: { type: 'NodePort', ports: [{ port: 81, targetPort: 'admin' }] } }).length, 1)
  assert.deepEqual(violations(gatewayAdminPrivate, svc, { spec: { clusterIP: 'None', ports: [{ name: 'admin', port: 9901, targetPort: 9901 }] } }), [], 'the headless admin Service')
  assert.deepEqual(violations(gatewayAdminPrivate, svc, { spec: { type: 'LoadBalancer', ports: [{ port: 443, targetPort: 8080 }] } }), [])
  const sm = 'kubernetes:monitoring.coreos.com/v1:ServiceMonitor'
  assert.match(violations(gatewayAdminPrivate, sm, { spec: { endpoints: [{ port: 'admin', path: '/metrics' }] } })[0]!, /scrapes without the admin token/)
  assert.match(violations(gatewayAdminPrivate, sm, { spec: { endpoints: [{ port: 'admin', bearerTokenFile: '/var/run/token' }] } })[0]!, /without the admin token/)
  assert.deepEqual(violations(gatewayAdminPrivate, sm, { spec: { endpoints: [{ port: 'admin', authorization: { type: 'Bearer', credentials: { name: 'gateway-admin', key: 'token' } } }] } }), [])
})
