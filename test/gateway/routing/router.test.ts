import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { RoutedUpstream } from '../../../gateway/src/routing/config.ts'
import { bindDnsDiscovery } from '../../../gateway/src/routing/dns-binding.ts'
import { Member, type MemberInit } from '../../../gateway/src/routing/member.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { Router } from '../../../gateway/src/routing/router.ts'
import { eject, routingConfig } from './helpers.ts'

function up(name: string, models: string[], extra: Partial<RoutedUpstream> = {}): RoutedUpstream {
  return { name, url: `http://${name}.internal:8000`, models, weight: 1, priority: 0, ...extra }
}

/** The factory the request path would pass; here the upstream is just a label. */
const createMember = (init: MemberInit): Member<string> => new Member(init, `pool:${init.origin}`)

const upstreams = [
  up('vllm-a', ['llama', 'qwen']),
  up('vllm-b', ['llama']),
  up('openai', ['*'], { url: 'https://api.openai.example/v1/', priority: 1 }),
]

function build(balancer: 'p2c-peak-ewma' | 'weighted-round-robin' = 'p2c-peak-ewma', list = upstreams) {
  const routing = routingConfig({
    balancer,
    aliases: {
      'gpt-4o': { model: 'llama', upstreams: ['vllm-b'] },
      fast: { model: 'qwen' },
      cloud: { model: 'gpt-4.1', upstreams: ['openai'] },
    },
  })
  return new Router(list, routing, { createMember, random: seededRandom(1) })
}

test('resolves aliases, explicit models, then "*" upstreams; unknown without "*" is null', () => {
  const r = build()
  const names = (model: string) => r.resolve(model)?.members.map((m) => m.name)
  assert.deepEqual(names('llama'), ['vllm-a', 'vllm-b'])
  assert.deepEqual(names('qwen'), ['vllm-a'])
  assert.equal(r.resolve('gpt-4o')?.model, 'llama')
  assert.deepEqual(names('gpt-4o'), ['vllm-b'])
  assert.equal(r.resolve('fast')?.model, 'qwen')
  assert.equal(r.resolve('cloud')?.model, 'gpt-4.1')
  assert.deepEqual(names('cloud'), ['openai'])
  assert.equal(r.resolve('o3-mini')?.model, 'o3-mini')
  assert.deepEqual(names('o3-mini'), ['openai'], 'a model nobody lists goes to "*" upstreams')
  assert.equal(r.resolve('o3-mini'), r.resolve('o3-mini'), 'resolutions are reused, not allocated per request')
  assert.equal(r.resolve('llama'), r.resolve('llama'))
  assert.equal(r.resolve('gpt-4o')!.hedge, r.resolve('gpt-4o')!.hedge)
  assert.notEqual(r.resolve('gpt-4o')!.hedge, r.resolve('llama')!.hedge, 'hedge timing is kept per group of members')
  const noWildcard = build('p2c-peak-ewma', upstreams.slice(0, 2))
  assert.equal(noWildcard.resolve('o3-mini'), null)
})

test('members carry origin, path prefix, host and the factory\'s upstream', () => {
  const r = build()
  const openai = r.resolve('cloud')!.members[0]!
  assert.equal(openai.origin, 'https://api.openai.example')
  assert.equal(openai.basePath, '/v1')
  assert.equal(openai.host, 'api.openai.example')
  assert.equal(openai.upstream, 'pool:https://api.openai.example')
  assert.equal(openai.priority, 1)
  assert.equal(r.resolve('llama')!.members[0], r.resolve('qwen')!.members[0], 'one member per upstream, shared by its models')
})

test('models() lists served models and aliases for /v1/models', () => {
  assert.deepEqual(build().models(), ['cloud', 'fast', 'gpt-4o', 'llama', 'qwen'])
})

test('pick balances within the resolution and honours exclusions', () => {
  const r = build('weighted-round-robin')
  const llama = r.resolve('llama')!
  const picked = [0, 1, 2, 3].map(() => r.pick(llama, null, null, 0)!.name)
  assert.deepEqual(picked.sort(), ['vllm-a', 'vllm-a', 'vllm-b', 'vllm-b'])
  const first = r.pick(llama, null, null, 0)!
  assert.notEqual(r.pick(llama, null, new Set([first]), 0), first)
  assert.equal(r.pick(llama, null, new Set(llama.members), 0), null)
})

test('anyAvailable follows member availability', () => {
  const r = build()
  assert.equal(r.anyAvailable(0), true)
  for (const m of r.members()) eject(m, 0)
  assert.equal(r.anyAvailable(1), false)
  assert.equal(r.anyAvailable(10 * 60_000), true, 'ejections end')
})

test('DNS members join and leave copy-on-write; a held array never changes', () => {
  const dnsUp = up('pods', ['llama'], { discovery: { dns: true, intervalMs: 1_000 } })
  const r = build('p2c-peak-ewma', [...upstreams, dnsUp])
  const llama = r.resolve('llama')!
  assert.deepEqual(llama.members.map((m) => m.name), ['vllm-a', 'vllm-b'], 'no member before discovery')
  const held = llama.members
  const p1 = r.addMember('pods', '10.0.0.1')!
  const p2 = r.addMember('pods', 'fd00::2')!
  assert.equal(p1.origin, 'http://10.0.0.1:8000')
  assert.equal(p2.origin, 'http://[fd00::2]:8000')
  assert.equal(p2.host, 'pods.internal:8000')
  assert.equal(r.addMember('pods', '10.0.0.1'), null, 'already a member')
  assert.equal(r.addMember('nope', '10.0.0.1'), null)
  assert.deepEqual(held.map((m) => m.name), ['vllm-a', 'vllm-b'])
  assert.deepEqual(r.resolve('llama')!.members.map((m) => m.name), ['vllm-a', 'vllm-b', 'pods@10.0.0.1', 'pods@fd00::2'])
  assert.ok(Object.isFrozen(r.resolve('llama')!.members))
  assert.deepEqual(r.resolve('qwen')!.members.map((m) => m.name), ['vllm-a'], 'pods do not serve qwen')
  assert.equal(r.members().length, 5)

  const during = r.resolve('llama')!.members
  const removed = r.removeMember('pods', '10.0.0.1')
  assert.equal(removed, p1)
  assert.equal(p1.draining, true)
  assert.equal(p1.available(0), false)
  assert.equal(during.length, 4, 'the array a request holds is untouched')
  assert.deepEqual(r.resolve('llama')!.members.map((m) => m.name), ['vllm-a', 'vllm-b', 'pods@fd00::2'])
  assert.equal(r.removeMember('pods', '10.0.0.1'), null)
})

test('bindDnsDiscovery turns resolved addresses into members and hands back removed ones', async () => {
  const dnsUp = up('pods', ['mistral'], { discovery: { dns: true, intervalMs: 60_000 } })
  const ipUp = up('fixed', ['mistral'], { url: 'http://10.9.0.1:8000', discovery: { dns: true, intervalMs: 60_000 } })
  const r = build('p2c-peak-ewma', [dnsUp, ipUp])
  assert.deepEqual(r.resolve('mistral')!.members.map((m) => m.name), ['fixed'], 'an address URL needs no discovery')
  let answer = ['10.0.0.1', '10.0.0.2']
  const asked: string[] = []
  const removed: string[] = []
  const binding = bindDnsDiscovery(r, {
    resolve: async (host) => {
      asked.push(host)
      return answer
    },
    onRemoved: (m) => removed.push(m.name),
  })
  await binding.ready
  assert.deepEqual(asked, ['pods.internal'])
  assert.deepEqual(r.resolve('mistral')!.members.map((m) => m.name), ['fixed', 'pods@10.0.0.1', 'pods@10.0.0.2'])
  const kept = r.resolve('mistral')!.members[2]
  answer = ['10.0.0.2', '10.0.0.3']
  await binding.refresh()
  assert.deepEqual(removed, ['pods@10.0.0.1'])
  assert.deepEqual(r.resolve('mistral')!.members.map((m) => m.name), ['fixed', 'pods@10.0.0.2', 'pods@10.0.0.3'])
  assert.equal(r.resolve('mistral')!.members[1], kept, 'a surviving address keeps its member and its state')
  answer = []
  await binding.refresh()
  assert.equal(r.resolve('mistral')!.members.length, 3, 'an empty answer changes nothing')
  binding.stop()
})
