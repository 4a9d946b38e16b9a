import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  GATEWAY_INSTANCE_TYPES, INFERENCE_INSTANCE_TYPES, INSTANCE_TYPES, amiArch, enaExpressApplies, gatewayAmiType, gatewayInstanceProblem, INFERENCE_AMI_TYPE,
} from '../../infra/lib/instance-types.ts'
import { parseCidr, planSubnets, subnetAt } from '../../infra/lib/subnets.ts'
import { gatewayTuning, nodeUserData, sysctls, tuningScript } from '../../infra/lib/user-data.ts'
import { baseName, parseStackName } from '../../infra/lib/naming.ts'
import { checkZones, pickZones, splitNodes } from '../../infra/lib/zones.ts'
import { cacheZones } from '../../infra/components/cache.ts'

test('every gateway type is ENA, network-optimised, placeable, CPU-only; AMI arch matches', () => {
  assert.ok(GATEWAY_INSTANCE_TYPES.includes('c7gn.16xlarge') && GATEWAY_INSTANCE_TYPES.includes('c6in.32xlarge'))
  for (const name of GATEWAY_INSTANCE_TYPES) {
    const t = INSTANCE_TYPES.get(name)!
    assert.equal(gatewayInstanceProblem(name), null)
    assert.ok(t.ena && t.networkOptimized && t.clusterPlacement && t.gpus === 0, name)
    assert.equal(amiArch(gatewayAmiType(t.arch)), t.arch, name)
  }
  assert.equal(gatewayAmiType('arm64'), 'AL2023_ARM_64_STANDARD')
  assert.equal(gatewayAmiType('x86_64'), 'AL2023_x86_64_STANDARD')
  for (const name of INFERENCE_INSTANCE_TYPES) assert.equal(INSTANCE_TYPES.get(name)!.arch, amiArch(INFERENCE_AMI_TYPE), name)
  // ENA Express only where the catalog says so (largest sizes): never on a type without ENA.
  for (const t of INSTANCE_TYPES.values()) if (t.enaExpress) assert.ok(t.ena, t.name)
  assert.equal(INSTANCE_TYPES.get('c7gn.16xlarge')!.enaExpress, true)
  assert.equal(INSTANCE_TYPES.get('c7gn.large')!.enaExpress, false)
})

test('subnet plan: disjoint private /19s and public /24s inside the VPC', () => {
  const plan = planSubnets('10.40.0.0/16', 3)
  assert.deepEqual(plan.map((p) => p.privateCidr), ['10.40.0.0/19', '10.40.32.0/19', '10.40.64.0/19'])
  assert.deepEqual(plan.map((p) => p.publicCidr), ['10.40.224.0/24', '10.40.225.0/24', '10.40.226.0/24'])
  const ranges = plan.flatMap((p) => [p.privateCidr, p.publicCidr]).map((c) => {
    const { base, prefix } = parseCidr(c)
    return [base, base + 2 ** (32 - prefix) - 1] as const
  }).sort((a, b) => a[0] - b[0])
  for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]![0] > ranges[i - 1]![1], 'no overlap')
  assert.throws(() => planSubnets('10.40.0.0/16', 1), /azCount/)
  assert.throws(() => planSubnets('10.40.0.0/24', 2), /too small/)
  assert.throws(() => parseCidr('10.40.0.1/16'), /host bits/)
  assert.equal(subnetAt('10.0.0.0/8', 16, 255), '10.255.0.0/16')
})

test('stack names are <stage>-<region>', () => {
  assert.deepEqual(parseStackName('prod-ap-northeast-1'), { stage: 'prod', region: 'ap-northeast-1' })
  assert.equal(baseName(parseStackName('staging-us-east-1')), 'velox-staging-us-east-1')
  assert.throws(() => parseStackName('prod'), /<stage>-<region>/)
  assert.throws(() => parseStackName('prod-useast1'), /<stage>-<region>/)
})

test('kernel tuning covers backlog, buffers, fast open, busy polling; the script is valid bash', () => {
  const s = sysctls(gatewayTuning(50))
  assert.equal(s['net.core.somaxconn'], '65535')
  assert.equal(s['net.core.netdev_max_backlog'], '250000')
  assert.equal(s['net.ipv4.tcp_fastopen'], '3')
  assert.equal(s['net.core.busy_poll'], '50')
  assert.equal(s['net.core.rmem_max'], String(64 * 1024 * 1024))
  const script = tuningScript(gatewayTuning(50))
  for (const needle of ['smp_affinity_list', 'xps_cpus', 'rps_cpus', 'irqbalance', 'sysctl --system']) assert.ok(script.includes(needle), needle)
  execFileSync('bash', ['-n'], { input: script })
  const doc = Buffer.from(nodeUserData(script), 'base64').toString('utf8')
  assert.match(doc, /^MIME-Version: 1.0\nContent-Type: multipart\/mixed; boundary="(.+)"/)
  assert.ok(doc.includes('Content-Type: text/x-shellscript') && doc.trimEnd().endsWith('--'))
})

test('the CPU mask helpers print the kernel format, past 32 CPUs too', () => {
  const script = tuningScript(gatewayTuning(0))
  const fns = script.slice(script.indexOf('cpumask() {'), script.indexOf('systemctl disable'))
  const run = (cpus: number, call: string) => execFileSync('bash', ['-c', `nproc() { echo ${cpus}; }\n${fns}\n${call}`], { encoding: 'utf8' }).trim()
  assert.equal(run(2, 'cpumask 1'), '00000002')
  assert.equal(run(2, 'allmask'), '00000003')
  assert.equal(run(64, 'cpumask 33'), '00000002,00000000')
  assert.equal(run(48, 'allmask'), '0000ffff,ffffffff')
})

test('zones: the first AZs offering every type; a clear error naming where each type is offered', () => {
  const offerings = [
    { instanceType: 'c7gn.large', zone: 'x-1a' }, { instanceType: 'c7gn.large', zone: 'x-1b' }, { instanceType: 'c7gn.large', zone: 'x-1c' },
    { instanceType: 'g6e.xlarge', zone: 'x-1b' }, { instanceType: 'g6e.xlarge', zone: 'x-1c' }, { instanceType: 'g6e.xlarge', zone: 'x-1d' },
  ]
  const available = ['x-1a', 'x-1b', 'x-1c', 'x-1d']
  assert.deepEqual(pickZones('x-1', available, offerings, ['c7gn.large', 'g6e.xlarge'], 2), ['x-1b', 'x-1c'])
  assert.throws(() => pickZones('x-1', available, offerings, ['c7gn.large', 'g6e.xlarge'], 3),
    /^Error: x-1: 3 AZs must offer c7gn.large and g6e.xlarge, but only 2 do \(x-1b, x-1c\); offered in c7gn.large: x-1a, x-1b, x-1c; g6e.xlarge: x-1b, x-1c, x-1d\. /)
  assert.doesNotThrow(() => checkZones('x-1', ['x-1b', 'x-1c'], offerings, ['c7gn.large', 'g6e.xlarge']))
  assert.throws(() => checkZones('x-1', ['x-1a', 'x-1d'], offerings, ['c7gn.large', 'g6e.xlarge']), /does not offer g6e.xlarge in x-1a, c7gn.large in x-1d/)
})

test('node counts split over AZs: min and desired sum to the totals, every AZ can grow', () => {
  for (let zones = 1; zones <= 4; zones++) {
    for (let min = 0; min <= 6; min++) for (let desired = min; desired <= 7; desired++) for (let max = Math.max(1, desired); max <= 9; max++) {
      const parts = splitNodes({ min, desired, max }, zones)
      assert.equal(parts.length, zones)
      assert.equal(parts.reduce((a, p) => a + p.min, 0), min)
      assert.equal(parts.reduce((a, p) => a + p.desired, 0), desired)
      for (const p of parts) assert.ok(p.min <= p.desired && p.desired <= p.max && p.max >= 1, JSON.stringify({ min, desired, max, zones, p }))
      assert.ok(parts.reduce((a, p) => a + p.max, 0) <= Math.max(max, desired) + zones - 1)
    }
  }
})

test('ENA Express only when both the gateway and the inference type support it', () => {
  assert.equal(enaExpressApplies('c7gn.16xlarge', 'p5.48xlarge'), true)
  assert.equal(enaExpressApplies('c7gn.16xlarge', 'g6e.12xlarge'), false, 'g6e has no ENA Express: the gateway side alone does nothing')
  assert.equal(enaExpressApplies('c7gn.large', 'p5.48xlarge'), false)
})

test('cache AZs: primary in the first compute AZ, replicas in the next', () => {
  assert.deepEqual(cacheZones(['a', 'b', 'c'], 1), ['a'])
  assert.deepEqual(cacheZones(['a', 'b', 'c'], 3), ['a', 'b', 'c'])
  assert.deepEqual(cacheZones(['a', 'b'], 3), ['a', 'b', 'a'])
})
