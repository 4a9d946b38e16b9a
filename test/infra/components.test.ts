/**
 * Each ComponentResource on its own under mocks (one child process, since the runtime is global).
 */
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from '../../infra/tools/stack-files.ts'
import type { DeclaredResource } from '../../infra/tools/mock-program.ts'

interface Result { resources: DeclaredResource[]; outputs: Record<string, any>; errors: Record<string, string> }
let result: Result

before(async () => {
  result = await new Promise((resolve, reject) => {
    execFile(process.execPath, [join(REPO_ROOT, 'test/infra/fixtures/components.ts')], { cwd: REPO_ROOT, maxBuffer: 32 * 1024 * 1024, timeout: 240_000 }, (err, out, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(out) as Result))
  })
})

const under = (component: string) => result.resources.filter((r) => r.custom && r.typeChain.startsWith(`${component}$`))
const named = (prefix: string) => result.resources.filter((r) => r.custom && r.name.startsWith(`${prefix}-`))
const component = (name: string) => result.resources.find((r) => !r.custom && r.name === name)

test('components use velox:<module>:<Type> tokens and name their children from themselves', () => {
  const tokens = new Set(result.resources.filter((r) => !r.custom).map((r) => r.type))
  assert.deepEqual([...tokens].sort(), ['velox:cache:Cache', 'velox:cluster:Cluster', 'velox:cluster:EksAddons', 'velox:dns:RegionalDns', 'velox:k8s:Workloads', 'velox:network:Network', 'velox:nodes:GatewayNodes', 'velox:nodes:InferenceNodes'])
  for (const r of result.resources.filter((r) => r.custom && r.typeChain.includes('$'))) {
    const parent = result.resources.find((c) => !c.custom && r.typeChain.startsWith(`${c.type}$`) && r.name.startsWith(`${c.name}-`))
    assert.ok(parent, `${r.name} (${r.typeChain}) is parented to and named from a component`)
  }
})

test('Network: subnets, NAT and routes per AZ; an existing VPC passes through', () => {
  const n3 = named('n3')
  const count = (t: string, rs: DeclaredResource[]) => rs.filter((r) => r.type === t).length
  assert.equal(count('aws:ec2/subnet:Subnet', n3), 6)
  assert.equal(count('aws:ec2/natGateway:NatGateway', n3), 3)
  assert.equal(count('aws:ec2/routeTable:RouteTable', n3), 4)
  assert.equal(count('aws:ec2/natGateway:NatGateway', named('n2')), 1)
  const pub = n3.find((r) => r.name === 'n3-public-0')!
  assert.equal(pub.inputs['tags']['kubernetes.io/role/elb'], '1')
  assert.equal(pub.inputs['mapPublicIpOnLaunch'], false)
  assert.equal(n3.find((r) => r.name === 'n3-private-2')!.inputs['availabilityZone'], 'us-east-1c')
  assert.deepEqual(result.outputs['n3Zones'], ['us-east-1a', 'us-east-1b', 'us-east-1c'])
  // The mock's us-east-1e offers no node family: an existing subnet's AZ comes from EC2, checked.
  assert.deepEqual(result.outputs['existingZones'], ['us-east-1b', 'us-east-1c'])
  assert.equal(named('ne').length, 0)
  assert.ok(component('ne'))
  assert.deepEqual(result.outputs['existingPrivate'], ['subnet-01', 'subnet-02'])
  assert.equal(result.outputs['existingVpc'], 'vpc-0abc')
})

test('Cluster: control plane, node role with SSM (no SSH), OIDC provider, restricted endpoint', () => {
  const k = under('velox:cluster:Cluster').filter((r) => r.name.startsWith('k-'))
  const eks = k.find((r) => r.type === 'aws:eks/cluster:Cluster')!
  assert.deepEqual(eks.inputs['vpcConfig']['publicAccessCidrs'], ['198.51.100.0/24'])
  assert.deepEqual(eks.inputs['accessConfig'], { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: false })
  assert.equal(eks.inputs['bootstrapSelfManagedAddons'], false, 'managed add-ons replace the self-managed ones')
  assert.deepEqual(eks.inputs['zonalShiftConfig'], { enabled: true })
  const oidc = k.find((r) => r.type === 'aws:iam/openIdConnectProvider:OpenIdConnectProvider')!
  assert.deepEqual(oidc.inputs['clientIdLists'], ['sts.amazonaws.com'])
  assert.equal(oidc.inputs['url'], result.outputs['oidcIssuer'])
  assert.equal(oidc.inputs['url'], eks.state['identities'][0].oidcs[0].issuer, 'the issuer EKS computed')
  const policies = k.filter((r) => r.type === 'aws:iam/rolePolicyAttachment:RolePolicyAttachment').map((r) => r.inputs['policyArn'].split('/').pop())
  assert.deepEqual(policies.sort(), ['AmazonEC2ContainerRegistryReadOnly', 'AmazonEKSClusterPolicy', 'AmazonEKSWorkerNodePolicy', 'AmazonEKS_CNI_Policy', 'AmazonSSMManagedInstanceCore'])
  const priv = result.resources.find((r) => r.name === 'kp-eks')!
  assert.equal(priv.inputs['vpcConfig']['endpointPublicAccess'], false)
  assert.equal(priv.inputs['vpcConfig']['endpointPrivateAccess'], true)
  assert.equal(priv.inputs['vpcConfig']['publicAccessCidrs'], undefined)
  const kc = JSON.parse(result.outputs['kubeconfig'])
  assert.deepEqual(kc.users[0].user.exec.args.slice(0, 4), ['eks', 'get-token', '--cluster-name', 'k'])
  assert.equal(kc.clusters[0].cluster.server, eks.state['endpoint'], 'the endpoint EKS computed')
  assert.equal(kc.clusters[0].cluster['certificate-authority-data'], eks.state['certificateAuthority'].data)
  assert.match(Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), /BEGIN CERTIFICATE/)
})

test('Cluster: an access entry and a cluster-scoped policy per role; private CIDRs reach the API through the computed cluster security group', () => {
  const entries = named('k').filter((r) => r.type === 'aws:eks/accessEntry:AccessEntry')
  const assoc = named('k').filter((r) => r.type === 'aws:eks/accessPolicyAssociation:AccessPolicyAssociation')
  const policy = (p: string) => `arn:aws:eks::aws:cluster-access-policy/${p}`
  assert.deepEqual(entries.map((e) => [e.name, e.inputs['principalArn'], e.inputs['type']]), [
    ['k-access-deploy', 'arn:aws:iam::123456789012:role/deploy', 'STANDARD'],
    ['k-access-preview', 'arn:aws:iam::123456789012:role/preview', 'STANDARD'],
    ['k-access-operator-0', 'arn:aws:iam::123456789012:role/ops-a', 'STANDARD'],
    ['k-access-operator-1', 'arn:aws:iam::123456789012:role/ops-b', 'STANDARD'],
  ])
  assert.deepEqual(assoc.map((a) => [a.inputs['principalArn'], a.inputs['policyArn'], a.inputs['accessScope']]), [
    ['arn:aws:iam::123456789012:role/deploy', policy('AmazonEKSClusterAdminPolicy'), { type: 'cluster' }],
    ['arn:aws:iam::123456789012:role/preview', policy('AmazonEKSAdminViewPolicy'), { type: 'cluster' }],
    ['arn:aws:iam::123456789012:role/ops-a', policy('AmazonEKSClusterAdminPolicy'), { type: 'cluster' }],
    ['arn:aws:iam::123456789012:role/ops-b', policy('AmazonEKSClusterAdminPolicy'), { type: 'cluster' }],
  ])
  for (const r of [...entries, ...assoc]) assert.equal(r.inputs['clusterName'], 'k')
  assert.deepEqual(result.outputs['accessPrincipals'], entries.map((e) => e.inputs['principalArn']))
  assert.equal(named('kp').filter((r) => r.type === 'aws:eks/accessEntry:AccessEntry').length, 1, 'deploy only')
  const rule = result.resources.find((r) => r.name === 'k-api-0')!
  assert.equal(rule.type, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule')
  assert.deepEqual([rule.inputs['securityGroupId'], rule.inputs['ipProtocol'], rule.inputs['fromPort'], rule.inputs['toPort'], rule.inputs['cidrIpv4']], [result.outputs['clusterSg'], 'tcp', 443, 443, '10.99.0.0/20'])
  assert.equal(result.outputs['clusterSg'], result.resources.find((r) => r.name === 'k-eks')!.state['vpcConfig'].clusterSecurityGroupId)
  assert.equal(named('kp').filter((r) => r.type.includes('securityGroupIngressRule')).length, 0)
})

test('EksAddons: versions come from DescribeAddonVersions for the cluster version, conflicts overwritten', () => {
  const addons = named('ad').filter((r) => r.type === 'aws:eks/addon:Addon')
  assert.deepEqual(addons.map((a) => [a.inputs['addonName'], a.inputs['addonVersion'], a.inputs['clusterName']]), [
    ['vpc-cni', 'v1.21.1-eksbuild.1', 'k'], ['coredns', 'v1.13.1-eksbuild.1', 'k'],
  ])
  for (const a of addons) assert.deepEqual([a.inputs['resolveConflictsOnCreate'], a.inputs['resolveConflictsOnUpdate']], ['OVERWRITE', 'OVERWRITE'])
  assert.deepEqual(result.outputs['addonVersions'], { 'vpc-cni': 'v1.21.1-eksbuild.1', coredns: 'v1.13.1-eksbuild.1' })
})

test('GatewayNodes: a node group and a cluster placement group per AZ, counts split, ENA Express only when asked and supported', () => {
  const groups = named('gwx').filter((r) => r.type === 'aws:eks/nodeGroup:NodeGroup')
  assert.equal(groups.length, 3)
  const subnets = ['n3-private-0', 'n3-private-1', 'n3-private-2'].map((n) => result.resources.find((r) => r.name === n)!.id)
  assert.deepEqual(groups.map((g) => g.inputs['subnetIds']), subnets.map((s) => [s]), 'one AZ each, the ids EC2 assigned')
  assert.deepEqual(groups.map((g) => g.inputs['scalingConfig']), [
    { minSize: 2, desiredSize: 2, maxSize: 3 }, { minSize: 1, desiredSize: 2, maxSize: 3 }, { minSize: 1, desiredSize: 1, maxSize: 2 },
  ])
  const pgs = named('gwx').filter((r) => r.type === 'aws:ec2/placementGroup:PlacementGroup')
  assert.deepEqual(pgs.map((p) => p.inputs['strategy']), ['cluster', 'cluster', 'cluster'])
  assert.deepEqual(result.outputs['gwPlacementGroups'], pgs.map((p) => p.state['name']))
  const lts = named('gwx').filter((r) => r.type === 'aws:ec2/launchTemplate:LaunchTemplate')
  assert.deepEqual(lts.map((l) => l.inputs['placement'].groupName), pgs.map((p) => p.state['name']), 'each AZ in its own placement group, by the name Pulumi generated')
  assert.deepEqual(groups.map((g) => g.inputs['launchTemplate'].id), lts.map((l) => l.id))
  const lt = lts[0]!
  assert.deepEqual(lt.inputs['networkInterfaces'][0].enaSrdSpecification, { enaSrdEnabled: true, enaSrdUdpSpecification: { enaSrdUdpEnabled: false } })
  assert.equal(groups[0]!.inputs['amiType'], 'AL2023_x86_64_STANDARD')
  assert.equal(result.outputs['gwEnaExpress'], true)
  assert.equal(result.resources.find((r) => r.name === 'gws-0-lt')!.inputs['networkInterfaces'][0].enaSrdSpecification, undefined)
  assert.equal(result.resources.find((r) => r.name === 'gws-0-nodes')!.inputs['amiType'], 'AL2023_ARM_64_STANDARD')
  assert.equal(lt.inputs['metadataOptions'].httpTokens, 'required')
  assert.equal(lt.inputs['metadataOptions'].httpPutResponseHopLimit, 1)
  assert.match(result.errors['gw-bad'] ?? '', /gateway nodes: "t2.micro" is not ENA-capable/)
  assert.match(result.errors['gw-srd'] ?? '', /"c7gn.large" does not support ENA Express/)
  assert.match(result.errors['gw-one-az'] ?? '', /need at least two AZs, got 1/)
  assert.equal(named('gwbad').length + named('gwsrd').length + named('gwone').length, 0)
})

test('InferenceNodes: NVIDIA AMI, GPU taint, the gateways\' AZs and subnets, no placement group, ENA Express on p5', () => {
  const groups = named('inf').filter((r) => r.type === 'aws:eks/nodeGroup:NodeGroup')
  const gw = named('gwx').filter((r) => r.type === 'aws:eks/nodeGroup:NodeGroup')
  assert.deepEqual(groups.map((g) => g.inputs['subnetIds']), gw.map((g) => g.inputs['subnetIds']))
  for (const ng of groups) {
    assert.equal(ng.inputs['amiType'], 'AL2023_x86_64_NVIDIA')
    assert.deepEqual(ng.inputs['instanceTypes'], ['p5.48xlarge'])
    assert.deepEqual(ng.inputs['labels'], { 'velox.dev/role': 'inference' })
  }
  const lt = result.resources.find((r) => r.name === 'inf-0-lt')!
  assert.equal(lt.inputs['placement'], undefined)
  assert.ok(lt.inputs['networkInterfaces'][0].enaSrdSpecification.enaSrdEnabled)
  assert.match(result.errors['inf-bad'] ?? '', /"c7gn.large" has no GPU/)
})

test('Cache: TLS required, at-rest encryption, failover and Multi-AZ only with replicas, AUTH as secret', () => {
  const c1 = result.resources.find((r) => r.name === 'c1-valkey')!
  const c3 = result.resources.find((r) => r.name === 'c3-valkey')!
  for (const c of [c1, c3]) {
    assert.equal(c.inputs['transitEncryptionEnabled'], true)
    assert.equal(c.inputs['atRestEncryptionEnabled'], true)
  }
  assert.deepEqual([c1.inputs['multiAzEnabled'], c1.inputs['automaticFailoverEnabled']], [false, false])
  assert.deepEqual([c3.inputs['multiAzEnabled'], c3.inputs['automaticFailoverEnabled'], c3.inputs['numCacheClusters']], [true, true, 3])
  assert.deepEqual(c3.inputs['preferredCacheClusterAzs'], ['us-east-1a', 'us-east-1b', 'us-east-1c'], 'primary in the first compute AZ')
  assert.deepEqual(c1.inputs['preferredCacheClusterAzs'], ['us-east-1a'])
  assert.equal(result.outputs['cacheReader'], c3.state['readerEndpointAddress'])
  assert.equal(c1.inputs['authToken'], undefined)
  assert.equal(c3.inputs['authToken'].value, '0123456789abcdefXYZ')
  assert.equal(result.outputs['cacheAuth'], true)
  assert.equal(result.resources.find((r) => r.name === 'c3-params')!.inputs['family'], 'valkey8')
  assert.equal(result.outputs['cacheEndpoint'], c3.state['primaryEndpointAddress'])
  assert.match(result.outputs['cacheEndpoint'], /^master\.c3\.[0-9a-f]{6}\.use1\.cache\.amazonaws\.com$/)
})

test('Workloads: provider from the kubeconfig, TLS listener on the NLB, secret-backed password', () => {
  const provider = result.resources.find((r) => r.name === 'w-k8s')!
  assert.equal(provider.type, 'pulumi:providers:kubernetes')
  const lb = result.resources.find((r) => r.name === 'w-gateway-lb')!
  assert.equal(lb.inputs['metadata'].annotations['service.beta.kubernetes.io/aws-load-balancer-ssl-cert'], 'arn:aws:acm:us-east-1:123456789012:certificate/abc')
  assert.deepEqual(lb.inputs['spec'].ports, [{ name: 'https', port: 443, targetPort: 8080, protocol: 'TCP' }])
  assert.equal(lb.inputs['spec'].loadBalancerClass, 'service.k8s.aws/nlb')
  const gw = result.resources.find((r) => r.name === 'w-gateway' && r.type === 'kubernetes:apps/v1:Deployment')!
  assert.equal(gw.inputs['spec'].replicas, undefined, 'the HPA owns the replica count')
  assert.equal(gw.inputs['spec'].template.metadata.annotations['velox.dev/config-hash'], 'abc')
  const vllm = result.resources.find((r) => r.name === 'w-vllm' && r.type === 'kubernetes:apps/v1:Deployment')!
  const c = vllm.inputs['spec'].template.spec.containers[0]
  assert.deepEqual(c.resources.limits, { memory: '1500Gi', 'nvidia.com/gpu': '8' })
  assert.ok(c.args.join(' ').includes('--tensor-parallel-size 8 --max-model-len 8192'))
  assert.match(result.outputs['lbHostname'], /\.elb\.us-east-1\.amazonaws\.com$/)
  const pdb = result.resources.find((r) => r.type === 'kubernetes:policy/v1:PodDisruptionBudget')!
  assert.equal(pdb.inputs['spec'].maxUnavailable, 1)
})

test('RegionalDns: HTTPS /readyz check through the NLB guards the latency record', () => {
  const hc = result.resources.find((r) => r.name === 'd-readyz')!
  assert.deepEqual([hc.inputs['type'], hc.inputs['port'], hc.inputs['resourcePath'], hc.inputs['requestInterval'], hc.inputs['failureThreshold']], ['HTTPS', 443, '/readyz', 10, 2])
  assert.equal(hc.inputs['fqdn'], result.outputs['lbHostname'])
  const rec = result.resources.find((r) => r.name === 'd-latency')!
  assert.equal(rec.inputs['setIdentifier'], 'us-east-1')
  assert.equal(rec.inputs['healthCheckId'], result.outputs['healthCheckId'])
  assert.equal(rec.inputs['healthCheckId'], hc.id, 'the id Route 53 assigned')
  assert.deepEqual(rec.inputs['aliases'], [{ name: result.outputs['lbHostname'], zoneId: 'Z26RNL4JYFTOTI', evaluateTargetHealth: true }])
  assert.equal(result.resources.find((r) => r.name === 'd-regional')!.inputs['name'], 'us-east-1.api.example.com')
})
