import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseStackConfig, StackConfigError } from '../../infra/lib/stack-config.ts'
import { parseStackName } from '../../infra/lib/naming.ts'
import { DEFAULT_KUBERNETES_VERSION, eksVersion, eksVersionProblem } from '../../infra/lib/eks-versions.ts'
import { readStackConfig, shippedStacks } from '../../infra/tools/stack-files.ts'

const base = (): Record<string, string> => ({
  'aws:region': 'us-east-1',
  'velox:gatewayImage': 'ghcr.io/velox-ai/gateway:main',
  'velox:domain': 'api.dev.example.com',
  'velox:hostedZoneId': 'Z0123456789ABC',
  'velox:clusterAccess': '{"deployRoleArn":"arn:aws:iam::123456789012:role/velox-deploy"}',
})
const ROLE = 'arn:aws:iam::123456789012:role/velox-deploy'

function problems(stack: string, raw: Record<string, string>): string[] {
  try {
    parseStackConfig(stack, raw)
  } catch (err) {
    assert.ok(err instanceof StackConfigError, String(err))
    return [...err.problems]
  }
  assert.fail('expected the config to be refused')
}

test('the five required stacks ship, and every shipped stack validates', () => {
  const stacks = shippedStacks()
  for (const s of ['dev-us-east-1', 'staging-us-east-1', 'prod-us-east-1', 'prod-eu-west-1', 'prod-ap-northeast-1']) assert.ok(stacks.includes(s), s)
  for (const s of stacks) {
    const c = parseStackConfig(s, readStackConfig(s))
    assert.equal(c.region, parseStackName(s).region)
    assert.ok(Object.isFrozen(c))
  }
})

test('stage defaults: dev small and single-AZ cache, prod multi-AZ and larger', () => {
  const dev = parseStackConfig('dev-us-east-1', base())
  assert.equal(dev.cacheNodes, 1)
  assert.equal(dev.vpc.natGateways, 'single')
  assert.equal(dev.gatewayInstanceType, 'c7gn.large')
  const digest = 'ghcr.io/velox-ai/gateway@sha256:' + 'a'.repeat(64)
  const apiKeys = JSON.stringify([{ name: 'k', tenant: 't', hash: `sha256:${'0'.repeat(64)}` }])
  const prod = parseStackConfig('prod-eu-west-1', { ...base(), 'aws:region': 'eu-west-1', 'velox:gatewayImage': digest, 'velox:apiKeys': apiKeys })
  assert.ok(prod.cacheNodes >= 2)
  assert.equal(prod.vpc.natGateways, 'perAz')
  assert.ok(prod.vpc.azCount >= 3)
  assert.ok(prod.gatewayNodes.min >= 2)
})

test('--path overrides merge into the stage default object', () => {
  const c = parseStackConfig('dev-us-east-1', { ...base(), 'velox:pool': '{"connections":128}' })
  assert.equal(c.pool.connections, 128)
  assert.equal(c.pool.warm, 2, 'keeps the default warm count')
})

test('unknown instance type names the key and the allowed values', () => {
  const [p] = problems('dev-us-east-1', { ...base(), 'velox:gatewayInstanceType': 'c9zz.large' })
  assert.match(p!, /^velox:gatewayInstanceType: unknown instance type "c9zz.large"; allowed: .*c7gn.large.*c6in.large/)
})

test('a non-ENA gateway type is refused, and so is an ENA type that is not network-optimised', () => {
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:gatewayInstanceType': 't2.medium' })[0]!, /velox:gatewayInstanceType: "t2.medium" is not ENA-capable/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:gatewayInstanceType': 'c7g.large' })[0]!, /not network-optimised/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:inferenceInstanceType': 'c7gn.large' })[0]!, /velox:inferenceInstanceType: "c7gn.large" has no GPU; allowed: .*g6e.xlarge/)
})

test('missing hosted zone and domain are reported as required, together', () => {
  const raw = base()
  delete raw['velox:hostedZoneId']
  delete raw['velox:domain']
  const ps = problems('dev-us-east-1', raw)
  assert.ok(ps.includes('velox:hostedZoneId: required'), ps.join('\n'))
  assert.ok(ps.includes('velox:domain: required'), ps.join('\n'))
})

test('a typo in a key is refused, not ignored', () => {
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:gatewayInstanceTyp': 'c7gn.large' })[0]!, /gatewayInstanceTyp/)
})

test('gateway architecture must be one the image is published for', () => {
  const ps = problems('dev-us-east-1', { ...base(), 'velox:imagePlatforms': '["linux/amd64"]' })
  assert.match(ps[0]!, /"c7gn.large" is arm64 but velox:imagePlatforms is \[linux\/amd64\]/)
  parseStackConfig('dev-us-east-1', { ...base(), 'velox:imagePlatforms': '["linux/amd64"]', 'velox:gatewayInstanceType': 'c6in.xlarge' })
})

test('prod rules: digest-pinned image, replicated cache; region must match the stack name', () => {
  const ps = problems('prod-us-east-1', { ...base(), 'velox:cacheNodes': '1' })
  assert.ok(ps.some((p) => p.startsWith('velox:gatewayImage: prod runs only images pinned by digest')), ps.join('\n'))
  assert.ok(ps.some((p) => p.startsWith('velox:cacheNodes: prod needs at least 2')), ps.join('\n'))
  assert.match(problems('dev-eu-west-1', base())[0]!, /aws:region: is "us-east-1" but the stack name says eu-west-1/)
  assert.throws(() => parseStackConfig('qa-us-east-1', base()), /<stage>-<region>/)
})

test('numbers, enums and lists are checked with the key in the message', () => {
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:cacheNodeType': 'cache.x1.huge' })[0]!, /^velox:cacheNodeType: unknown cache node type .*allowed: cache.t4g.micro/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:logLevel': 'loud' })[0]!, /^velox:logLevel: .*"info"/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:pool': '{"connections":4,"warm":8}' })[0]!, /^velox:pool: warm must not exceed connections/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:clusterEndpointPublicCidrs': '["0.0.0.0/0"]' })[0]!, /^velox:clusterEndpointPublicCidrs.0: 0.0.0.0\/0 opens the Kubernetes API to the whole internet/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:fallbackUpstreams': '["https://api.dev.example.com"]' })[0]!, /^velox:fallbackUpstreams.0: .*resolves back to this region/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:gatewayReplicas': '{"min":1,"max":5}' })[0]!, /^velox:gatewayReplicas.max: 5 exceeds velox:gatewayNodes.max 2/)
})

test('cluster version: the default is in EKS standard support through 2026; unknown and lapsed versions are refused', () => {
  const c = parseStackConfig('dev-us-east-1', base(), '2026-12-31')
  const v = eksVersion(c.kubernetesVersion)!
  assert.ok(v.endOfStandardSupport >= '2026-12-31', `${v.version} ends standard support ${v.endOfStandardSupport}`)
  assert.equal(c.kubernetesVersion, DEFAULT_KUBERNETES_VERSION)
  for (const s of shippedStacks()) assert.equal(eksVersionProblem(parseStackConfig(s, readStackConfig(s), '2026-12-31').kubernetesVersion, '2026-12-31'), null, s)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:kubernetesVersion': '1.33' })[0]!, /^velox:kubernetesVersion: EKS 1.33 left standard support on 2026-07-29.*use (1.34 or )?1.35$/)
  assert.match(problems('dev-us-east-1', { ...base(), 'velox:kubernetesVersion': '1.99' })[0]!, /unknown EKS version "1.99"; known: 1.33, 1.34, 1.35/)
  assert.equal(eksVersionProblem('1.34', '2026-12-02'), null, 'the last day still counts')
  assert.match(eksVersionProblem('1.34', '2026-12-03') ?? '', /left standard support/)
})

test('cluster access: a deploy role is required, session ARNs and duplicates are refused', () => {
  const raw = { ...base() }
  delete raw['velox:clusterAccess']
  assert.ok(problems('dev-us-east-1', raw).includes('velox:clusterAccess.deployRoleArn: required'))
  const session = problems('dev-us-east-1', { ...base(), 'velox:clusterAccess': '{"deployRoleArn":"arn:aws:sts::123456789012:assumed-role/deploy/ci"}' })
  assert.match(session[0]!, /^velox:clusterAccess.deployRoleArn: an IAM role ARN .*not an sts assumed-role ARN/)
  const dup = problems('dev-us-east-1', { ...base(), 'velox:clusterAccess': JSON.stringify({ deployRoleArn: ROLE, operatorRoleArns: [ROLE] }) })
  assert.match(dup[0]!, /is listed twice; EKS allows one access entry per principal/)
  const c = parseStackConfig('dev-us-east-1', { ...base(), 'velox:clusterAccess': JSON.stringify({ deployRoleArn: ROLE }) })
  assert.deepEqual(c.clusterAccess, { deployRoleArn: ROLE, operatorRoleArns: [] })
})

test('API endpoint CIDRs: no 0.0.0.0/0, nothing wider than /16, no documentation or private ranges in public; private only private', () => {
  const pub = (cidrs: string[]) => problems('dev-us-east-1', { ...base(), 'velox:clusterEndpointPublicCidrs': JSON.stringify(cidrs) })
  assert.match(pub(['0.0.0.0/0'])[0]!, /^velox:clusterEndpointPublicCidrs.0: 0.0.0.0\/0 opens the Kubernetes API to the whole internet/)
  assert.match(pub(['52.0.0.0/8'])[0]!, /broader than \/16/)
  assert.match(pub(['198.51.100.7/32'])[0]!, /documentation range \(TEST-NET-2/)
  assert.match(pub(['10.1.0.0/16'])[0]!, /private range \(RFC 1918\).*velox:clusterEndpointPrivateCidrs/)
  assert.match(pub(['52.1.2.3/24'])[0]!, /host bits set/)
  parseStackConfig('dev-us-east-1', { ...base(), 'velox:clusterEndpointPublicCidrs': '["52.94.10.0/24","34.192.7.9/32"]' })
  const priv = problems('dev-us-east-1', { ...base(), 'velox:clusterEndpointPrivateCidrs': '["52.94.10.0/24"]' })
  assert.match(priv[0]!, /^velox:clusterEndpointPrivateCidrs.0: 52.94.10.0\/24 is not inside a private range/)
  parseStackConfig('dev-us-east-1', { ...base(), 'velox:clusterEndpointPrivateCidrs': '["10.40.0.0/16","172.20.4.0/22"]' })
  for (const s of shippedStacks()) {
    const c = parseStackConfig(s, readStackConfig(s))
    assert.deepEqual(c.clusterEndpointPublicCidrs, [], `${s}: no public API endpoint in the shipped stacks`)
  }
})

test('AZ spread: prod needs 3 AZs, staging and prod a gateway node per AZ', () => {
  const digest = 'ghcr.io/velox-ai/gateway@sha256:' + 'a'.repeat(64)
  const prod = { ...base(), 'aws:region': 'eu-west-1', 'velox:gatewayImage': digest }
  assert.ok(problems('prod-eu-west-1', { ...prod, 'velox:vpc': '{"azCount":2}' }).includes('velox:vpc.azCount: prod spreads compute over at least 3 AZs, got 2'))
  assert.ok(problems('staging-us-east-1', { ...base(), 'velox:gatewayImage': digest, 'velox:vpc': '{"azCount":3}' }).includes('velox:gatewayNodes.min: 2 cannot keep a gateway node in each of the 3 AZs; use at least 3'))
})

test('velox:limits is the gateway\'s own limits section: parsed as JSON, checked by the gateway schema', () => {
  const c = parseStackConfig('dev-us-east-1', { ...base(), 'velox:limits': JSON.stringify({ rules: [{ match: { tenant: 'acme' }, requestsPerMinute: 600 }] }) })
  assert.equal(c.limits?.rules[0]?.requestsPerMinute, 600)
  const [p] = problems('dev-us-east-1', { ...base(), 'velox:limits': JSON.stringify({ rules: [{ match: { tenant: 'acme' } }] }) })
  assert.match(p!, /^velox:limits/)
  assert.match(p!, /at least one limit/)
})
