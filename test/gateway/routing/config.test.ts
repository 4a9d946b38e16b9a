import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RoutingConfigSchema, UpstreamDiscoverySchema, routingIssues, type RoutedUpstream } from '../../../gateway/src/routing/config.ts'

test('defaults fill every key', () => {
  const cfg = RoutingConfigSchema.parse({})
  assert.deepEqual(cfg, {
    balancer: 'p2c-peak-ewma',
    hashKey: { bodyField: 'user' },
    aliases: {},
    retry: { maxAttempts: 3, on: ['connect', 'reset', 'timeout', '429', '5xx'], budgetRatio: 0.2, budgetMinPerSecond: 10 },
    hedge: { enabled: false, delayMs: 'p95' },
    health: { activePath: '/health', intervalMs: 5000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 2 },
    outlier: { consecutiveFailures: 5, baseEjectionMs: 5000, maxEjectionMs: 60000 },
    ewmaDecayMs: 10000,
    inferenceAware: {
      weights: { prefill: 4, prefix: 1, queue: 1, kvCache: 0.5, load: 1, latency: 0.5 },
      boundedLoad: 1.5,
      stickiness: 0,
      pace: { minBlocks: 0, fixedBlocks: 4, memoryMs: 10000, tolerance: 1.5 },
      placement: { factor: 0, decayMs: 10000 },
      creditSharedPrefix: false,
      prefix: { blockChars: 256, maxBlocks: 256, capacity: 200000, membersPerBlock: 8 },
      metrics: { enabled: true, path: '/metrics', intervalMs: 250, timeoutMs: 1000, staleAfterMs: 2000 },
      admission: { queueThreshold: 0, mode: 'hold', holdMs: 2000, maxHeld: 256, retryAfterSeconds: 1 },
      explain: false,
    },
  })
})

test('inference-aware settings are checked', () => {
  assert.throws(() => RoutingConfigSchema.parse({ inferenceAware: { boundedLoad: 0.5 } }), /boundedLoad/)
  assert.throws(() => RoutingConfigSchema.parse({ inferenceAware: { weights: { prefix: -1 } } }), /weights/)
  assert.throws(() => RoutingConfigSchema.parse({ inferenceAware: { weights: { tokens: 1 } } }), /tokens/)
  assert.throws(() => RoutingConfigSchema.parse({ inferenceAware: { stickiness: -1 } }), /stickiness/)
  const cfg = RoutingConfigSchema.parse({ balancer: 'inference-aware', inferenceAware: { weights: { queue: 0 }, boundedLoad: 0 } })
  assert.equal(cfg.inferenceAware.weights.queue, 0)
  assert.equal(cfg.inferenceAware.boundedLoad, 0)
})

test('default lists are not shared between parses', () => {
  const a = RoutingConfigSchema.parse({})
  a.retry.on.pop()
  a.aliases['x'] = { model: 'y' }
  const b = RoutingConfigSchema.parse({})
  assert.equal(b.retry.on.length, 5)
  assert.deepEqual(b.aliases, {})
})

test('accepts a full config', () => {
  const cfg = RoutingConfigSchema.parse({
    balancer: 'consistent-hash',
    hashKey: { header: 'X-Session-Id', bodyField: 'user' },
    aliases: { 'gpt-4o': { model: 'meta-llama/Llama-3.1-70B-Instruct', upstreams: ['vllm-a'] } },
    retry: { maxAttempts: 2, on: ['connect', '5xx'], budgetRatio: 0.1, budgetMinPerSecond: 1 },
    hedge: { enabled: true, delayMs: 250 },
  })
  assert.equal(cfg.hashKey.header, 'x-session-id', 'header names are matched lower-cased')
  assert.deepEqual(cfg.retry.on, ['connect', '5xx'])
  assert.equal(cfg.hedge.delayMs, 250)
})

test('rejects unknown keys and bad values with their path', () => {
  const cases: [unknown, string][] = [
    [{ balancer: 'random' }, 'balancer'],
    [{ retry: { maxAtempts: 3 } }, 'retry'],
    [{ retry: { on: ['4xx'] } }, 'retry.on.0'],
    [{ retry: { budgetRatio: 2 } }, 'retry.budgetRatio'],
    [{ hedge: { delayMs: 'p99' } }, 'hedge.delayMs'],
    [{ health: { activePath: 'health' } }, 'health.activePath'],
    [{ outlier: { baseEjectionMs: 10_000, maxEjectionMs: 5_000 } }, 'outlier.maxEjectionMs'],
    [{ aliases: { a: { model: 'm', upstreams: ['bad name'] } } }, 'aliases.a.upstreams.0'],
    [{ extra: true }, ''],
  ]
  for (const [input, path] of cases) {
    const r = RoutingConfigSchema.safeParse(input)
    assert.equal(r.success, false, JSON.stringify(input))
    assert.ok(r.error.issues.some((i) => i.path.join('.') === path), `${JSON.stringify(input)}: ${JSON.stringify(r.error.issues)}`)
  }
})

test('upstream discovery is optional and strict', () => {
  assert.equal(UpstreamDiscoverySchema.parse(undefined), undefined)
  assert.deepEqual(UpstreamDiscoverySchema.parse({ dns: true }), { dns: true, intervalMs: 5000 })
  assert.equal(UpstreamDiscoverySchema.safeParse({ dns: true, intervalMs: 10 }).success, false)
  assert.equal(UpstreamDiscoverySchema.safeParse({ srv: true }).success, false)
})

test('routingIssues cross-checks aliases against upstreams', () => {
  const upstreams: RoutedUpstream[] = [
    { name: 'a', url: 'http://a:8000', models: ['llama'], weight: 1, priority: 0 },
    { name: 'b', url: 'http://b:8000', models: ['qwen'], weight: 1, priority: 0 },
  ]
  const ok = RoutingConfigSchema.parse({ aliases: { fast: { model: 'llama' }, pinned: { model: 'llama', upstreams: ['a'] } } })
  assert.deepEqual(routingIssues(ok, upstreams), [])
  const bad = RoutingConfigSchema.parse({
    aliases: { x: { model: 'mistral' }, y: { model: 'llama', upstreams: ['b', 'zzz'] } },
  })
  assert.deepEqual(
    routingIssues(bad, upstreams).map((i) => i.path.join('.')),
    ['routing.aliases.x.model', 'routing.aliases.y.upstreams.0', 'routing.aliases.y.upstreams.1'],
  )
  const wildcard = [...upstreams, { name: 'c', url: 'https://c', models: ['*'], weight: 1, priority: 1 }]
  assert.deepEqual(routingIssues(bad, wildcard).map((i) => i.path.join('.')), ['routing.aliases.y.upstreams.0', 'routing.aliases.y.upstreams.1'])
})

test('discovery.servers takes IP addresses with an optional port, nothing else', () => {
  for (const ok of [['10.96.0.10'], ['127.0.0.1:5353'], ['[fd00::10]:53', 'fd00::11']]) {
    assert.deepEqual(UpstreamDiscoverySchema.parse({ dns: true, servers: ok })?.servers, ok)
  }
  for (const bad of [['kube-dns.local'], ['127.0.0.1:0'], ['127.0.0.1:70000'], ['[10.0.0.1]:53'], ['1.2.3'], []]) {
    assert.throws(() => UpstreamDiscoverySchema.parse({ dns: true, servers: bad }), /servers/, JSON.stringify(bad))
  }
})
