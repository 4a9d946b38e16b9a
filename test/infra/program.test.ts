/**
 * The whole program on every shipped stack under Pulumi's mocks, each run with Pulumi's state and the
 * program's modules new (helpers/run-stack.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'yaml'
import { GatewayConfigSchema } from '../../gateway/src/config/schema.ts'
import { enaExpressApplies, instanceType } from '../../infra/lib/instance-types.ts'
import { MOCK_ADDON_VERSIONS } from '../../infra/tools/mock-program.ts'
import { parseStackConfig } from '../../infra/lib/stack-config.ts'
import { checkResource } from '../../infra/policy/policies.ts'
import { readStackConfig, shippedStacks } from '../../infra/tools/stack-files.ts'
import { countByType, ofType, one, runStack } from './helpers/run-stack.ts'

const stacks = shippedStacks()
// Start every run now; the helper keeps two in flight.
for (const s of stacks) void runStack(s).catch(() => {})

for (const stack of stacks) {
  const cfg = parseStackConfig(stack, readStackConfig(stack))

  test(`${stack}: declares the full region without errors`, async () => {
    const run = await runStack(stack)
    assert.equal(run.error, null)
    const n = countByType(run)
    for (const component of ['velox:network:Network', 'velox:cluster:Cluster', 'velox:nodes:GatewayNodes', 'velox:nodes:InferenceNodes', 'velox:cache:Cache', 'velox:k8s:Workloads', 'velox:dns:RegionalDns']) {
      assert.equal(n[component], 1, component)
    }
    const az = cfg.vpc.azCount
    assert.equal(n['aws:ec2/subnet:Subnet'], 2 * az)
    assert.equal(n['aws:ec2/natGateway:NatGateway'], cfg.vpc.natGateways === 'perAz' ? az : 1)
    assert.equal(n['aws:eks/cluster:Cluster'], 1)
    assert.equal(n['aws:iam/openIdConnectProvider:OpenIdConnectProvider'], 1)
    assert.equal(n['aws:eks/nodeGroup:NodeGroup'], 2 * az, 'gateway and inference node group per AZ')
    assert.equal(n['aws:ec2/launchTemplate:LaunchTemplate'], 2 * az)
    assert.equal(n['aws:ec2/placementGroup:PlacementGroup'], az, 'one cluster placement group per AZ')
    assert.equal(n['aws:eks/addon:Addon'], 4)
    assert.equal(n['aws:eks/accessEntry:AccessEntry'], 2 + cfg.clusterAccess.operatorRoleArns.length)
    assert.equal(n['aws:eks/accessPolicyAssociation:AccessPolicyAssociation'], n['aws:eks/accessEntry:AccessEntry'])
    assert.equal(n['aws:elasticache/replicationGroup:ReplicationGroup'], 1)
    assert.equal(n['aws:route53/healthCheck:HealthCheck'], 1)
    assert.equal(n['aws:route53/record:Record'], 2)
    assert.equal(n['kubernetes:apps/v1:Deployment'], 2)
    assert.equal(n['kubernetes:policy/v1:PodDisruptionBudget'], 2, 'gateway and vLLM')
    assert.equal(n['kubernetes:autoscaling/v2:HorizontalPodAutoscaler'], 1)
    assert.equal(n['pulumi:providers:aws'], 1)
    assert.equal(n['pulumi:providers:kubernetes'], 1)
  })

  test(`${stack}: one explicit regional provider with default tags; children parented to components`, async () => {
    const run = await runStack(stack)
    const provider = one(run, 'pulumi:providers:aws')
    assert.equal(provider.inputs['region'], cfg.region)
    const tags = JSON.parse(provider.inputs['defaultTags']).tags
    assert.deepEqual({ stage: tags['velox:stage'], region: tags['velox:region'], project: tags['project'] }, { stage: cfg.stage, region: cfg.region, project: 'velox' })
    for (const r of run.resources.filter((r) => r.type.startsWith('aws:'))) {
      assert.ok(r.provider?.includes(`::${provider.name}::`), `${r.name} uses the regional provider`)
      assert.match(r.typeChain, /^velox:[a-z0-9]+:[A-Za-z]+\$/, `${r.name} is a component's child`)
      const component = run.resources.find((c) => !c.custom && r.typeChain.startsWith(`${c.type}$`) && r.name.startsWith(`${c.name}-`))!
      assert.ok(component, `${r.name} is named from a component of type ${r.typeChain.split('$')[0]}`)
    }
    for (const r of run.resources.filter((r) => r.type.startsWith('kubernetes:'))) assert.match(r.provider ?? '', /pulumi:providers:kubernetes/)
    const k8sProvider = one(run, 'pulumi:providers:kubernetes')
    assert.match(JSON.stringify(k8sProvider.inputs['kubeconfig']), /get-token/)
  })

  test(`${stack}: gateway nodes are ENA, per AZ in cluster placement groups, tuned, IMDSv2, no SSH; inference nodes in the same AZs`, async () => {
    const run = await runStack(stack)
    const info = instanceType(cfg.gatewayInstanceType)!
    const zones = run.outputs['zoneNames'] as string[]
    assert.equal(new Set(zones).size, cfg.vpc.azCount, 'distinct AZs')
    assert.ok(zones.length >= (cfg.stage === 'prod' ? 3 : 2))
    const subnetOf = new Map(ofType(run, 'aws:ec2/subnet:Subnet').map((s) => [s.id, s.inputs['availabilityZone']]))
    const gw = ofType(run, 'aws:eks/nodeGroup:NodeGroup').filter((g) => g.name.includes('-gateway-'))
    const gpu = ofType(run, 'aws:eks/nodeGroup:NodeGroup').filter((g) => g.name.includes('-inference-'))
    assert.deepEqual(gw.map((g) => subnetOf.get(g.inputs['subnetIds'][0])), zones, 'a gateway node group in every AZ')
    assert.deepEqual(gpu.map((g) => subnetOf.get(g.inputs['subnetIds'][0])), zones, 'inference node groups in the gateways\' AZs')
    assert.equal(gw.reduce((a, g) => a + g.inputs['scalingConfig'].desiredSize, 0), cfg.gatewayNodes.desired)
    assert.equal(gpu.reduce((a, g) => a + g.inputs['scalingConfig'].desiredSize, 0), cfg.inferenceNodes.desired)
    if (cfg.stage !== 'dev') assert.ok(gw.every((g) => g.inputs['scalingConfig'].minSize >= 1), 'outside dev every AZ keeps a gateway')
    for (const ng of gw) {
      assert.deepEqual(ng.inputs['instanceTypes'], [cfg.gatewayInstanceType])
      assert.equal(ng.inputs['amiType'], info.arch === 'arm64' ? 'AL2023_ARM_64_STANDARD' : 'AL2023_x86_64_STANDARD')
      assert.equal(ng.inputs['remoteAccess'], undefined)
      assert.equal(ng.inputs['subnetIds'].length, 1, 'one AZ: its placement group')
    }
    assert.ok(info.ena && info.networkOptimized)
    for (const ng of gpu) {
      assert.equal(ng.inputs['amiType'], 'AL2023_x86_64_NVIDIA')
      assert.deepEqual(ng.inputs['taints'], [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NO_SCHEDULE' }])
    }
    const pgs = ofType(run, 'aws:ec2/placementGroup:PlacementGroup')
    const gwLts = ofType(run, 'aws:ec2/launchTemplate:LaunchTemplate').filter((l) => l.name.includes('-gateway-'))
    const gpuLts = ofType(run, 'aws:ec2/launchTemplate:LaunchTemplate').filter((l) => l.name.includes('-inference-'))
    assert.deepEqual(gwLts.map((l) => l.inputs['placement'].groupName), pgs.map((p) => p.state['name']))
    assert.ok(pgs.every((p) => p.inputs['strategy'] === 'cluster'))
    for (const lt of gpuLts) assert.equal(lt.inputs['placement'], undefined, 'GPU capacity is not packed into the gateways\' placement group')
    const srdWanted = enaExpressApplies(cfg.gatewayInstanceType, cfg.inferenceInstanceType)
    for (const lt of [...gwLts, ...gpuLts]) {
      assert.equal(lt.inputs['metadataOptions'].httpTokens, 'required')
      assert.equal(lt.inputs['keyName'], undefined)
      assert.equal(lt.inputs['networkInterfaces'][0].associatePublicIpAddress, 'false')
      assert.ok(lt.inputs['blockDeviceMappings'][0].ebs.encrypted === 'true')
      assert.ok(lt.inputs['tagSpecifications'].some((t: { resourceType: string }) => t.resourceType === 'instance'))
      const srd = lt.inputs['networkInterfaces'][0].enaSrdSpecification
      if (srdWanted) assert.deepEqual(srd, { enaSrdEnabled: true, enaSrdUdpSpecification: { enaSrdUdpEnabled: false } })
      else assert.equal(srd, undefined, 'no ENA Express unless both ends of the same-subnet hop support it')
    }
    const userData = Buffer.from(gwLts[0]!.inputs['userData'], 'base64').toString('utf8')
    for (const k of ['net.core.somaxconn', 'net.core.netdev_max_backlog', 'net.ipv4.tcp_fastopen = 3', `net.core.busy_poll = ${cfg.busyPollMicros}`, 'net.core.rmem_max', 'smp_affinity_list', 'xps_cpus', 'rps_cpus']) {
      assert.ok(userData.includes(k), k)
    }
  })

  test(`${stack}: the API admits the configured roles only, add-ons match the cluster version, the kubeconfig is what EKS computed`, async () => {
    const run = await runStack(stack)
    const eks = one(run, 'aws:eks/cluster:Cluster')
    assert.equal(eks.inputs['version'], cfg.kubernetesVersion)
    assert.equal(eks.inputs['accessConfig'].authenticationMode, 'API')
    assert.equal(eks.inputs['accessConfig'].bootstrapClusterCreatorAdminPermissions, false)
    assert.equal(eks.inputs['vpcConfig'].endpointPublicAccess, cfg.clusterEndpointPublicCidrs.length > 0)
    assert.ok(!(eks.inputs['vpcConfig'].publicAccessCidrs ?? []).includes('0.0.0.0/0'))
    const principals = ofType(run, 'aws:eks/accessEntry:AccessEntry').map((e) => e.inputs['principalArn'])
    assert.deepEqual(principals, [cfg.clusterAccess.deployRoleArn, ...(cfg.clusterAccess.previewRoleArn ? [cfg.clusterAccess.previewRoleArn] : []), ...cfg.clusterAccess.operatorRoleArns])
    const rules = ofType(run, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule')
    assert.deepEqual(rules.map((r) => r.inputs['cidrIpv4']), cfg.clusterEndpointPrivateCidrs)
    for (const r of rules) assert.equal(r.inputs['securityGroupId'], eks.state['vpcConfig'].clusterSecurityGroupId)
    const addons = ofType(run, 'aws:eks/addon:Addon')
    assert.deepEqual(addons.map((a) => a.inputs['addonName']).sort(), ['coredns', 'eks-pod-identity-agent', 'kube-proxy', 'vpc-cni'])
    for (const a of addons) assert.equal(a.inputs['addonVersion'], MOCK_ADDON_VERSIONS[cfg.kubernetesVersion]![a.inputs['addonName']])
    assert.deepEqual(run.outputs['addonVersions'], MOCK_ADDON_VERSIONS[cfg.kubernetesVersion])
    const kc = JSON.parse(String(run.outputs['kubeconfig']))
    assert.equal(kc.clusters[0].cluster.server, eks.state['endpoint'])
    assert.equal(kc.clusters[0].cluster['certificate-authority-data'], eks.state['certificateAuthority'].data)
    const nodeSg = ofType(run, 'aws:ec2/launchTemplate:LaunchTemplate')[0]!.inputs['networkInterfaces'][0].securityGroups
    assert.deepEqual(nodeSg, [eks.state['vpcConfig'].clusterSecurityGroupId], 'nodes join the security group EKS created')
  })

  test(`${stack}: cache is TLS-only, encrypted, Multi-AZ when replicated, LRU-tuned, closed to the world`, async () => {
    const run = await runStack(stack)
    const rg = one(run, 'aws:elasticache/replicationGroup:ReplicationGroup')
    assert.equal(rg.inputs['engine'], 'valkey')
    assert.equal(rg.inputs['transitEncryptionEnabled'], true)
    assert.equal(rg.inputs['transitEncryptionMode'], 'required')
    assert.equal(rg.inputs['atRestEncryptionEnabled'], true)
    assert.equal(rg.inputs['numCacheClusters'], cfg.cacheNodes)
    assert.equal(rg.inputs['multiAzEnabled'], cfg.cacheNodes >= 2)
    assert.equal(rg.inputs['automaticFailoverEnabled'], cfg.cacheNodes >= 2)
    if (cfg.stage === 'prod') assert.ok(rg.inputs['multiAzEnabled'])
    const params = one(run, 'aws:elasticache/parameterGroup:ParameterGroup')
    assert.ok(params.inputs['parameters'].some((p: { name: string; value: string }) => p.name === 'maxmemory-policy' && p.value === 'allkeys-lru'))
    assert.equal((rg.inputs['preferredCacheClusterAzs'] as string[])[0], (run.outputs['zoneNames'] as string[])[0], 'primary in the first compute AZ')
    assert.equal(new Set(rg.inputs['preferredCacheClusterAzs']).size, Math.min(cfg.cacheNodes, cfg.vpc.azCount), 'replicas in other AZs')
    assert.equal(run.outputs['cacheEndpoint'], rg.state['primaryEndpointAddress'])
    const sg = one(run, 'aws:ec2/securityGroup:SecurityGroup', '-cache-sg')
    assert.deepEqual(sg.inputs['ingress'].map((r: { cidrBlocks?: string[] }) => r.cidrBlocks ?? []), [[]])
  })

  test(`${stack}: latency record per region with a /readyz health check`, async () => {
    const run = await runStack(stack)
    const hc = one(run, 'aws:route53/healthCheck:HealthCheck')
    assert.equal(hc.inputs['resourcePath'], '/readyz')
    assert.equal(hc.inputs['type'], cfg.certificateArn ? 'HTTPS' : 'HTTP')
    assert.equal(hc.inputs['requestInterval'], cfg.healthCheckIntervalSeconds)
    assert.match(hc.inputs['fqdn'], /\.elb\.[a-z0-9-]+\.amazonaws\.com$/, 'checks through the NLB')
    const rec = one(run, 'aws:route53/record:Record', '-latency')
    assert.equal(rec.inputs['setIdentifier'], cfg.region)
    assert.deepEqual(rec.inputs['latencyRoutingPolicies'], [{ region: cfg.region }])
    assert.equal(rec.inputs['name'], cfg.globalStack ? `latency.${cfg.domain}` : cfg.domain, 'the accelerator owns <domain> when there is one')
    assert.equal(rec.inputs['zoneId'], cfg.hostedZoneId)
    assert.equal(rec.inputs['healthCheckId'], hc.id, 'guarded by the health check')
    assert.equal(rec.inputs['aliases'][0].name, hc.inputs['fqdn'])
    assert.equal(one(run, 'aws:route53/record:Record', '-regional').inputs['name'], `${cfg.region}.${cfg.domain}`)
  })

  test(`${stack}: the gateway runs the config the gateway accepts, with probes, host networking and an NLB`, async () => {
    const run = await runStack(stack)
    const cm = one(run, 'kubernetes:core/v1:ConfigMap', 'gateway-config')
    const config = GatewayConfigSchema.parse(parse(cm.inputs['data']['gateway.yaml']))
    assert.equal(config.upstreams[0]!.url, 'http://vllm.velox.svc.cluster.local:8000')
    assert.deepEqual(config.upstreams[0]!.models, [cfg.model])
    assert.equal(config.upstreams[0]!.pool.connections, cfg.pool.connections)
    assert.equal(config.upstreams[0]!.timeouts.firstByteMs, cfg.timeouts.firstByteMs)
    assert.equal(config.redis.url, `rediss://${run.outputs['cacheEndpoint']}:6379`)
    assert.deepEqual(config.upstreams.slice(1).map((u) => [u.url, u.priority]), cfg.fallbackUpstreams.map((u) => [u, 1]))

    const gw = one(run, 'kubernetes:apps/v1:Deployment', '-gateway')
    const pod = gw.inputs['spec']['template']
    assert.equal(pod.metadata.annotations['velox.dev/config-hash'], run.outputs['gatewayConfigHash'])
    assert.equal(pod.spec.hostNetwork, true)
    assert.equal(pod.spec.dnsPolicy, 'ClusterFirstWithHostNet')
    assert.deepEqual(pod.spec.nodeSelector, { 'velox.dev/role': 'gateway' })
    const c = pod.spec.containers[0]
    assert.equal(c.image, cfg.gatewayImage)
    assert.deepEqual(c.args, ['--config', '/etc/velox/gateway.yaml'])
    assert.equal(c.readinessProbe.httpGet.path, '/readyz')
    assert.equal(c.livenessProbe.httpGet.path, '/healthz')
    assert.ok(pod.spec.topologySpreadConstraints.some((t: { topologyKey: string }) => t.topologyKey === 'kubernetes.io/hostname'))
    const hpa = one(run, 'kubernetes:autoscaling/v2:HorizontalPodAutoscaler')
    assert.deepEqual([hpa.inputs['spec'].minReplicas, hpa.inputs['spec'].maxReplicas], [cfg.gatewayReplicas.min, cfg.gatewayReplicas.max])

    const lb = ofType(run, 'kubernetes:core/v1:Service').find((s) => s.inputs['spec'].type === 'LoadBalancer')!
    assert.equal(lb.inputs['spec'].loadBalancerClass, 'service.k8s.aws/nlb', 'owned by the AWS Load Balancer Controller')
    assert.deepEqual(lb.inputs['spec'].ports.map((p: { port: number }) => p.port), [cfg.certificateArn ? 443 : 80])
    const vllmSvc = ofType(run, 'kubernetes:core/v1:Service').find((s) => s.inputs['metadata'].name === 'vllm')!
    assert.equal(vllmSvc.inputs['spec'].clusterIP, 'None', 'headless')
    const vllm = one(run, 'kubernetes:apps/v1:Deployment', '-vllm').inputs['spec']['template']['spec']
    assert.ok(vllm.containers[0].args.includes(cfg.model))
    assert.ok(vllm.tolerations.some((t: { key: string }) => t.key === 'nvidia.com/gpu'))
  })

  test(`${stack}: every declared resource passes the policy pack`, async () => {
    const run = await runStack(stack)
    const violations = run.resources.flatMap((r) => checkResource({ type: r.type, props: r.inputs, urn: `urn:pulumi:${stack}::velox::${r.typeChain}::${r.name}`, name: r.name }).map((v) => `${r.name}: ${v}`))
    assert.deepEqual(violations, [])
  })

  test(`${stack}: exports what peers and promotion need`, async () => {
    const run = await runStack(stack)
    const o = run.outputs
    assert.equal(o['region'], cfg.region)
    assert.equal(o['stage'], cfg.stage)
    assert.equal(o['gatewayImage'], cfg.gatewayImage)
    assert.equal(o['regionalUrl'], `${cfg.certificateArn ? 'https' : 'http'}://${cfg.region}.${cfg.domain}`)
    assert.equal(typeof o['healthCheckId'], 'string')
    assert.equal(typeof o['loadBalancerHostname'], 'string')
  })
}

test('a region\'s fallback URLs name other shipped regions\' regional URLs', () => {
  const regional = new Map(stacks.map((s) => { const c = parseStackConfig(s, readStackConfig(s)); return [`${c.certificateArn ? 'https' : 'http'}://${c.region}.${c.domain}`, c] }))
  for (const s of stacks) {
    const c = parseStackConfig(s, readStackConfig(s))
    for (const url of c.fallbackUpstreams) {
      const peer = regional.get(url)
      assert.ok(peer, `${s}: ${url} is a shipped region`)
      assert.notEqual(peer.region, c.region)
      assert.equal(peer.stage, c.stage)
    }
  }
})

/** The raw config mock-program.ts hands the program for these CLI arguments. */
function withArgs(stack: string, args: readonly string[]): Record<string, string> {
  const raw = readStackConfig(stack)
  for (const a of args) {
    if (a.startsWith('-')) delete raw[a.slice(1)]
    else raw[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1)
  }
  return raw
}

test('bad stack config fails before any resource is declared', async () => {
  const cases: [string[], RegExp][] = [
    [['velox:gatewayInstanceType=m4.large'], /velox:gatewayInstanceType: "m4.large" is not ENA-capable/],
    [['velox:gatewayInstanceType=x9.large'], /velox:gatewayInstanceType: unknown instance type "x9.large"; allowed:/],
    [['-velox:hostedZoneId'], /velox:hostedZoneId: required/],
    [['-velox:clusterAccess'], /velox:clusterAccess.deployRoleArn: required/],
    [['velox:clusterEndpointPublicCidrs=["0.0.0.0/0"]'], /velox:clusterEndpointPublicCidrs.0: 0.0.0.0\/0 opens the Kubernetes API to the whole internet/],
    [['velox:clusterEndpointPublicCidrs=["203.0.113.0/24"]'], /documentation range \(TEST-NET-3/],
    [['velox:kubernetesVersion=1.29'], /velox:kubernetesVersion: unknown EKS version "1.29"/],
  ]
  // Each case is refused by the stack-config validation the program runs first...
  for (const [args, message] of cases) {
    assert.throws(() => parseStackConfig('dev-us-east-1', withArgs('dev-us-east-1', args)), message)
  }
  // ...and the program, given several at once, stops with that validation's whole message and
  // declares nothing (one run: a run costs a process and the Pulumi SDK's load).
  // (A missing required key stops validation before the instance-type and version checks.)
  const combined = ['velox:gatewayInstanceType=m4.large', 'velox:clusterEndpointPublicCidrs=["0.0.0.0/0"]', 'velox:kubernetesVersion=1.29']
  let expected = ''
  try { parseStackConfig('dev-us-east-1', withArgs('dev-us-east-1', combined)) } catch (err) { expected = (err as Error).message }
  for (const [args, message] of cases) if (combined.includes(args[0]!)) assert.match(expected, message)
  assert.equal(expected.split('\n  - ').length, 1 + combined.length, expected)
  const run = await runStack('dev-us-east-1', ...combined)
  assert.equal(run.error, expected)
  assert.deepEqual(run.resources, [], 'nothing declared')
})

test('instance types not offered in enough AZs stop the deployment before any node group, naming where they are offered', async () => {
  const run = await runStack('dev-us-east-1', 'env:VELOX_MOCK_NOT_OFFERED=g6e.xlarge@us-east-1a,g6e.xlarge@us-east-1c,g6e.xlarge@us-east-1d,g6e.xlarge@us-east-1f')
  assert.match(run.error ?? '', /^us-east-1: 2 AZs must offer c7gn.large and g6e.xlarge, but only 1 do \(us-east-1b\); offered in c7gn.large: us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f; g6e.xlarge: us-east-1b\./)
  assert.equal(ofType(run, 'aws:eks/nodeGroup:NodeGroup').length, 0)
  // An AZ without an offering is skipped, not failed: with us-east-1a out, the VPC takes b and c.
  const skip = await runStack('dev-us-east-1', 'env:VELOX_MOCK_NOT_OFFERED=g6e.xlarge@us-east-1a')
  assert.equal(skip.error, null)
  assert.deepEqual(skip.outputs['zoneNames'], ['us-east-1b', 'us-east-1c'])
  // An existing VPC whose subnet sits in an AZ without the type is refused.
  const existing = await runStack('dev-us-east-1', 'velox:existingVpc={"vpcId":"vpc-0abc","privateSubnetIds":["subnet-01","subnet-04"],"publicSubnetIds":["subnet-02","subnet-03"]}', '-velox:vpc')
  assert.match(existing.error ?? '', /existing VPC's private subnets are in AZs where EC2 does not offer c7gn.large in us-east-1e, g6e.xlarge in us-east-1e/)
  assert.equal(ofType(existing, 'aws:eks/nodeGroup:NodeGroup').length, 0)
})

test('an AUTH token reaches the cache as a secret and the gateway as an env var, never the config', async () => {
  const run = await runStack('dev-us-east-1', 'velox:cacheAuthToken=abcdefghijklmnop0123')
  assert.equal(run.error, null)
  // Pulumi's wire form of a secret: the special signature key marks the value as secret.
  const SECRET = { '4dabf18193072939515e22adb298388d': '1b47061264138c4ac30d75fd1eb44270', value: 'abcdefghijklmnop0123' }
  assert.deepEqual(one(run, 'aws:elasticache/replicationGroup:ReplicationGroup').inputs['authToken'], SECRET)
  assert.deepEqual(one(run, 'kubernetes:core/v1:Secret', 'gateway-redis').inputs['stringData'], { ...SECRET, value: { password: SECRET.value } })
  const cm = one(run, 'kubernetes:core/v1:ConfigMap', 'gateway-config').inputs['data']['gateway.yaml'] as string
  assert.ok(!cm.includes('abcdefghijklmnop0123'))
  assert.equal(GatewayConfigSchema.parse(parse(cm)).redis.passwordEnv, 'VELOX_REDIS_PASSWORD')
  const env = one(run, 'kubernetes:apps/v1:Deployment', '-gateway').inputs['spec']['template']['spec']['containers'][0]['env']
  assert.deepEqual(env, [
    { name: 'VELOX_ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'gateway-admin', key: 'token' } } },
    { name: 'VELOX_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'gateway-redis', key: 'password' } } },
  ])
  assert.deepEqual(ofType(run, 'kubernetes:core/v1:Secret').map((s) => s.inputs['metadata'].name).sort(), ['gateway-admin', 'gateway-redis'])
})
