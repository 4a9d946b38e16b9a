/**
 * The global stack (`<stage>-global`) and how a region joins it, under Pulumi's mocks: the
 * accelerator, its listener and alias, ECR with replication, and each region's endpoint group
 * built from outputs AWS computes (the listener ARN through a StackReference, the NLB ARN looked
 * up from the hostname the Service reports).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { nlbNameFromHostname } from '../../infra/components/accelerator-endpoint.ts'
import { isGlobalStack, parseGlobalConfig } from '../../infra/lib/global-config.ts'
import { parseStackConfig } from '../../infra/lib/stack-config.ts'
import { regionalImage } from '../../infra/promote/release.ts'
import { readStackConfig, shippedGlobalStacks, shippedStacks } from '../../infra/tools/stack-files.ts'
import { ofType, one, runStack } from './helpers/run-stack.ts'

for (const s of ['prod-global', 'prod-eu-west-1', 'staging-us-east-1']) void runStack(s).catch(() => {})

test('global stacks: one per stage that has regions behind an accelerator, each naming exactly its regions', () => {
  const globals = shippedGlobalStacks()
  assert.deepEqual(globals, ['dev-global', 'prod-global', 'staging-global'])
  for (const g of globals) {
    const cfg = parseGlobalConfig(g, readStackConfig(g))
    const regional = shippedStacks().filter((s) => s.startsWith(`${cfg.stage}-`)).map((s) => parseStackConfig(s, readStackConfig(s)))
    assert.deepEqual([...cfg.regions].sort(), regional.map((r) => r.region).sort(), `${g} lists every ${cfg.stage} region`)
    assert.equal(cfg.accelerator, cfg.stage !== 'dev')
    for (const r of regional) {
      assert.ok(r.gatewayImage.startsWith(`123456789012.dkr.ecr.${r.region}.amazonaws.com/${cfg.repositoryName}`), `${r.stage}-${r.region} pulls from its stage's ECR repository`)
      assert.equal(r.globalStack?.split('/').pop(), cfg.accelerator ? g : undefined)
      assert.equal(r.domain, cfg.domain)
      assert.equal(r.certificateArn !== undefined, cfg.tls, `${r.region}: listener port matches the accelerator's`)
    }
  }
  assert.ok(isGlobalStack('prod-global') && !isGlobalStack('prod-us-east-1'))
  assert.throws(() => parseGlobalConfig('qa-global', { 'aws:region': 'us-east-1' }), /must be named <stage>-global/)
  assert.throws(() => parseGlobalConfig('prod-global', { 'aws:region': 'us-east-1', 'velox:regions': '["eu-west-1"]', 'velox:domain': 'api.example.com', 'velox:hostedZoneId': 'Z1' }), /velox:regions: must include the home region us-east-1/)
  assert.throws(() => parseGlobalConfig('prod-global', { 'aws:region': 'us-east-1', 'velox:regions': '["us-east-1"]' }), /velox:domain: required[\s\S]*velox:hostedZoneId: required/)
})

test('prod-global: accelerator and listener through a us-west-2 provider, <domain> aliased to the computed accelerator name', async () => {
  const run = await runStack('prod-global')
  assert.equal(run.error, null)
  const providers = ofType(run, 'pulumi:providers:aws')
  assert.deepEqual(providers.map((p) => p.inputs['region']).sort(), ['us-east-1', 'us-west-2'])
  const ga = one(run, 'aws:globalaccelerator/accelerator:Accelerator')
  const listener = one(run, 'aws:globalaccelerator/listener:Listener')
  for (const r of [ga, listener]) assert.match(r.provider ?? '', /::aws-us-west-2::/, `${r.name}: the Global Accelerator API is in us-west-2`)
  assert.deepEqual([ga.inputs['ipAddressType'], ga.inputs['enabled']], ['IPV4', true])
  assert.equal(listener.inputs['acceleratorArn'], ga.state['arn'])
  assert.deepEqual([listener.inputs['protocol'], listener.inputs['portRanges']], ['TCP', [{ fromPort: 443, toPort: 443 }]])
  const alias = one(run, 'aws:route53/record:Record', '-alias')
  assert.deepEqual([alias.inputs['name'], alias.inputs['type'], alias.inputs['zoneId']], ['api.velox.example.com', 'A', 'Z0PROD00000EXAMPLE'])
  assert.deepEqual(alias.inputs['aliases'], [{ name: ga.state['dnsName'], zoneId: 'Z2BJ6XQ5FK7U4H', evaluateTargetHealth: false }])
  assert.equal(run.outputs['listenerArn'], listener.state['arn'])
  assert.deepEqual(run.outputs['staticIps'], ga.state['ipSets'][0].ipAddresses)
})

test('prod-global: ECR repository with immutable tags and scanning, replicated to every other prod region', async () => {
  const run = await runStack('prod-global')
  const repo = one(run, 'aws:ecr/repository:Repository')
  assert.match(repo.provider ?? '', /::aws-us-east-1::/, 'the home region CI pushes to')
  assert.deepEqual([repo.inputs['name'], repo.inputs['imageTagMutability'], repo.inputs['imageScanningConfiguration']], ['velox/prod/gateway', 'IMMUTABLE', { scanOnPush: true }])
  const rep = one(run, 'aws:ecr/replicationConfiguration:ReplicationConfiguration')
  const rule = rep.inputs['replicationConfiguration'].rules[0]
  assert.deepEqual(rule.destinations, [{ region: 'eu-west-1', registryId: '123456789012' }, { region: 'ap-northeast-1', registryId: '123456789012' }], 'account id from sts:GetCallerIdentity')
  assert.deepEqual(rule.repositoryFilters, [{ filter: 'velox/prod/gateway', filterType: 'PREFIX_MATCH' }])
  const lifecycle = JSON.parse(one(run, 'aws:ecr/lifecyclePolicy:LifecyclePolicy').inputs['policy'])
  assert.deepEqual(lifecycle.rules[0].selection, { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 30 })
  const urls = run.outputs['regionalRepositoryUrls'] as Record<string, string>
  assert.equal(urls['us-east-1'], repo.state['repositoryUrl'])
  for (const s of shippedStacks().filter((x) => x.startsWith('prod-'))) {
    const cfg = parseStackConfig(s, readStackConfig(s))
    assert.ok(cfg.gatewayImage.startsWith(`${urls[cfg.region]}@sha256:`), `${s} pulls from its own region's replica`)
  }
})

test('a region joins the accelerator: endpoint group on the global listener, pointing at the NLB ARN behind its hostname', async () => {
  const run = await runStack('prod-eu-west-1')
  assert.equal(run.error, null)
  const ref = one(run, 'pulumi:pulumi:StackReference')
  assert.equal(ref.inputs['name'], 'velox-ai/velox/prod-global')
  const group = one(run, 'aws:globalaccelerator/endpointGroup:EndpointGroup')
  assert.equal(group.inputs['listenerArn'], ref.state['outputs'].listenerArn)
  assert.deepEqual([group.inputs['endpointGroupRegion'], group.inputs['healthCheckPath'], group.inputs['healthCheckProtocol'], group.inputs['healthCheckPort'], group.inputs['trafficDialPercentage']], ['eu-west-1', '/readyz', 'HTTPS', 443, 100])
  const host = run.outputs['loadBalancerHostname'] as string
  const [endpoint] = group.inputs['endpointConfigurations']
  assert.equal(endpoint.endpointId, `arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/${nlbNameFromHostname(host)}/${host.split('.')[0]!.split('-').pop()}`)
  assert.equal(run.outputs['acceleratorEndpointGroupArn'], group.state['arn'])
  assert.equal(one(run, 'aws:route53/record:Record', '-latency').inputs['name'], 'latency.api.velox.example.com', '<domain> belongs to the accelerator')
  assert.equal(run.outputs['latencyUrl'], 'https://latency.api.velox.example.com')
  const dev = await runStack('dev-us-east-1')
  assert.equal(ofType(dev, 'aws:globalaccelerator/endpointGroup:EndpointGroup').length, 0, 'no global stack, no accelerator')
  assert.equal(one(dev, 'aws:route53/record:Record', '-latency').inputs['name'], 'api.dev.velox.example.com')
})

test('dev-global: the image repository only, no accelerator', async () => {
  const run = await runStack('dev-global')
  assert.equal(run.error, null)
  assert.equal(ofType(run, 'aws:globalaccelerator/accelerator:Accelerator').length, 0)
  assert.equal(one(run, 'aws:ecr/repository:Repository').inputs['name'], 'velox/dev/gateway')
  assert.equal(ofType(run, 'aws:ecr/replicationConfiguration:ReplicationConfiguration').length, 0, 'one region: nothing to replicate to')
})

test('NLB names come from the DNS name; other hostnames are refused; ECR images move to the region\'s replica', () => {
  assert.equal(nlbNameFromHostname('k8s-velox-gateway-a2ead96021-47cdb35284ed7771.elb.us-east-1.amazonaws.com'), 'k8s-velox-gateway-a2ead96021')
  assert.throws(() => nlbNameFromHostname('a1b2.awsglobalaccelerator.com'), /not a Network Load Balancer DNS name/)
  const digest = 'sha256:' + 'c'.repeat(64)
  assert.equal(regionalImage(`123456789012.dkr.ecr.us-east-1.amazonaws.com/velox/prod/gateway@${digest}`, 'ap-northeast-1'), `123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/velox/prod/gateway@${digest}`)
  assert.equal(regionalImage(`ghcr.io/velox-ai/gateway@${digest}`, 'eu-west-1'), `ghcr.io/velox-ai/gateway@${digest}`)
  assert.throws(() => parseStackConfig('prod-eu-west-1', { ...readStackConfig('prod-eu-west-1'), 'velox:globalStack': 'velox-ai/velox/staging-global' }), /is not this stage's global stack \(prod-global\)/)
})
