/**
 * The whole program on every shipped stack, each run in its own process under Pulumi's mocks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'yaml'
import { GatewayConfigSchema } from '../../gateway/src/config/schema.ts'
import { instanceType } from '../../infra/lib/instance-types.ts'
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
    assert.equal(n['aws:eks/nodeGroup:NodeGroup'], 2)
    assert.equal(n['aws:ec2/launchTemplate:LaunchTemplate'], 2)
    assert.equal(n['aws:ec2/placementGroup:PlacementGroup'], 1)
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
      const component = run.resources.find((c) => !c.custom && r.typeChain.startsWith(`${c.type}$`))!
      assert.ok(r.name.startsWith(`${component.name}-`), `${r.name} is named from its component ${component.name}`)
    }
    for (const r of run.resources.filter((r) => r.type.startsWith('kubernetes:'))) assert.match(r.provider ?? '', /pulumi:providers:kubernetes/)
    const k8sProvider = one(run, 'pulumi:providers:kubernetes')
    assert.match(JSON.stringify(k8sProvider.inputs['kubeconfig']), /get-token/)
  })

  test(`${stack}: gateway nodes are ENA, in a cluster placement group, tuned, IMDSv2, no SSH`, async () => {
    const run = await runStack(stack)
    const info = instanceType(cfg.gatewayInstanceType)!
    assert.equal(one(run, 'aws:ec2/placementGroup:PlacementGroup').inputs['strategy'], 'cluster')
    const ng = one(run, 'aws:eks/nodeGroup:NodeGroup', '-gateway-nodes')
    assert.deepEqual(ng.inputs['instanceTypes'], [cfg.gatewayInstanceType])
    assert.ok(info.ena && info.networkOptimized)
    assert.equal(ng.inputs['amiType'], info.arch === 'arm64' ? 'AL2023_ARM_64_STANDARD' : 'AL2023_x86_64_STANDARD')
    assert.equal(ng.inputs['remoteAccess'], undefined)
    assert.equal(ng.inputs['subnetIds'].length, 1, 'one AZ: the placement group')
    const gpu = one(run, 'aws:eks/nodeGroup:NodeGroup', '-inference-nodes')
    assert.deepEqual(gpu.inputs['subnetIds'], ng.inputs['subnetIds'], 'inference nodes share the AZ')
    assert.equal(gpu.inputs['amiType'], 'AL2023_x86_64_NVIDIA')
    assert.deepEqual(gpu.inputs['taints'], [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NO_SCHEDULE' }])

    const gwLt = one(run, 'aws:ec2/launchTemplate:LaunchTemplate', '-gateway-lt')
    const gpuLt = one(run, 'aws:ec2/launchTemplate:LaunchTemplate', '-inference-lt')
    const pg = one(run, 'aws:ec2/placementGroup:PlacementGroup')
    assert.equal(gwLt.inputs['placement'].groupName, pg.inputs['name'] ?? pg.name)
    assert.equal(gpuLt.inputs['placement'].groupName, gwLt.inputs['placement'].groupName, 'same placement group')
    for (const lt of [gwLt, gpuLt]) {
      assert.equal(lt.inputs['metadataOptions'].httpTokens, 'required')
      assert.equal(lt.inputs['keyName'], undefined)
      assert.equal(lt.inputs['networkInterfaces'][0].associatePublicIpAddress, 'false')
      assert.ok(lt.inputs['blockDeviceMappings'][0].ebs.encrypted === 'true')
      assert.ok(lt.inputs['tagSpecifications'].some((t: { resourceType: string }) => t.resourceType === 'instance'))
    }
    const srd = gwLt.inputs['networkInterfaces'][0].enaSrdSpecification
    if (info.enaExpress) assert.deepEqual(srd, { enaSrdEnabled: true, enaSrdUdpSpecification: { enaSrdUdpEnabled: true } })
    else assert.equal(srd, undefined, 'no ENA Express on a type without it')
    const userData = Buffer.from(gwLt.inputs['userData'], 'base64').toString('utf8')
    for (const k of ['net.core.somaxconn', 'net.core.netdev_max_backlog', 'net.ipv4.tcp_fastopen = 3', `net.core.busy_poll = ${cfg.busyPollMicros}`, 'net.core.rmem_max', 'smp_affinity_list', 'xps_cpus', 'rps_cpus']) {
      assert.ok(userData.includes(k), k)
    }
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
    assert.equal(rec.inputs['name'], cfg.domain)
    assert.equal(rec.inputs['zoneId'], cfg.hostedZoneId)
    assert.ok(rec.inputs['healthCheckId'].endsWith(hc.name), 'guarded by the health check')
    assert.equal(rec.inputs['aliases'][0].name, hc.inputs['fqdn'])
    assert.equal(one(run, 'aws:route53/record:Record', '-regional').inputs['name'], `${cfg.region}.${cfg.domain}`)
  })

  test(`${stack}: the gateway runs the config the gateway accepts, with probes, host networking and an NLB`, async () => {
    const run = await runStack(stack)
    const cm = one(run, 'kubernetes:core/v1:ConfigMap')
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

test('bad stack config fails before any resource is declared', async () => {
  const cases: [string[], RegExp][] = [
    [['velox:gatewayInstanceType=m4.large'], /velox:gatewayInstanceType: "m4.large" is not ENA-capable/],
    [['velox:gatewayInstanceType=x9.large'], /velox:gatewayInstanceType: unknown instance type "x9.large"; allowed:/],
    [['-velox:hostedZoneId'], /velox:hostedZoneId: required/],
  ]
  for (const [args, message] of cases) {
    const run = await runStack('dev-us-east-1', ...args)
    assert.match(run.error ?? '', message)
    assert.deepEqual(run.resources, [], 'nothing declared')
  }
})

test('an AUTH token reaches the cache as a secret and the gateway as an env var, never the config', async () => {
  const run = await runStack('dev-us-east-1', 'velox:cacheAuthToken=abcdefghijklmnop0123')
  assert.equal(run.error, null)
  // Pulumi's wire form of a secret: the special signature key marks the value as secret.
  const SECRET = { '4dabf18193072939515e22adb298388d': '1b47061264138c4ac30d75fd1eb44270', value: 'abcdefghijklmnop0123' }
  assert.deepEqual(one(run, 'aws:elasticache/replicationGroup:ReplicationGroup').inputs['authToken'], SECRET)
  assert.deepEqual(one(run, 'kubernetes:core/v1:Secret').inputs['stringData'], { ...SECRET, value: { password: SECRET.value } })
  const cm = one(run, 'kubernetes:core/v1:ConfigMap').inputs['data']['gateway.yaml'] as string
  assert.ok(!cm.includes('abcdefghijklmnop0123'))
  assert.equal(GatewayConfigSchema.parse(parse(cm)).redis.passwordEnv, 'VELOX_REDIS_PASSWORD')
  const env = one(run, 'kubernetes:apps/v1:Deployment', '-gateway').inputs['spec']['template']['spec']['containers'][0]['env']
  assert.deepEqual(env, [{ name: 'VELOX_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'gateway-redis', key: 'password' } } }])
  assert.equal(ofType(run, 'kubernetes:core/v1:Secret').length, 1)
})
