/** The limiter over the in-memory store: rules, windows, reservations, budgets, concurrency, headers. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../../../gateway/src/errors.ts'
import { LimitsSchema, type LimitsConfigInput } from '../../../gateway/src/limits/config.ts'
import { Limiter, type Admission, type LimitSubject } from '../../../gateway/src/limits/limiter.ts'
import { MemoryLimitStore } from '../../../gateway/src/limits/store.ts'
import { MINUTE, formatReset } from '../../../gateway/src/limits/windows.ts'

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0)
const acme: LimitSubject = { tenant: 'acme', keyName: 'acme-1', model: 'llama-3' }
const small = { inputTokens: 10, outputTokens: 10 }

function limiter(input: LimitsConfigInput): Limiter {
  return new Limiter(LimitsSchema.parse(input), new MemoryLimitStore())
}

function admitSync(l: Limiter, s: LimitSubject, cost = small, now = T0): Admission {
  const a = l.admit(s, cost, now)
  assert.ok(!(a instanceof Promise), 'the memory store decides synchronously')
  return a
}

function refusal(fn: () => unknown): GatewayError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof GatewayError)
    return err
  }
  assert.fail('expected a refusal')
}

test('requests per minute: the limit is admitted, the next one refused with 429, Retry-After and the OpenAI code', () => {
  const l = limiter({ rules: [{ name: 'acme-rpm', match: { tenant: 'acme' }, requestsPerMinute: 5 }] })
  for (let i = 0; i < 5; i++) admitSync(l, acme, small, T0 + i)
  const err = refusal(() => l.admit(acme, small, T0 + 10))
  assert.equal(err.status, 429)
  assert.equal(err.code, 'GW_ERR_RATE_LIMITED')
  assert.equal(JSON.parse(err.body()).error.code, 'rate_limit_exceeded')
  assert.equal(JSON.parse(err.body()).error.gateway_code, 'GW_ERR_RATE_LIMITED')
  assert.match(err.message, /5 requests per minute.*acme-rpm/)
  assert.equal(err.retryAfter, 61, 'the first leaves 60.5 s after T0')
  // Other tenants are not covered by the rule.
  admitSync(l, { ...acme, tenant: 'globex' }, small, T0 + 10)
})

test('the minute slides: counts leave the window 60 s after they were taken, not at a minute boundary', () => {
  const l = limiter({ rules: [{ requestsPerMinute: 4 }] })
  admitSync(l, acme, small, T0)
  admitSync(l, acme, small, T0)
  admitSync(l, acme, small, T0 + 30_000)
  admitSync(l, acme, small, T0 + 30_000)
  const err = refusal(() => l.admit(acme, small, T0 + 59_000))
  assert.equal(err.retryAfter, 2, 'the two oldest leave at T0 + 60.5 s (60 s, rounded up to the next half-second bucket)')
  refusal(() => l.admit(acme, small, T0 + 60_000))
  admitSync(l, acme, small, T0 + 60_500)
  admitSync(l, acme, small, T0 + 60_500)
  refusal(() => l.admit(acme, small, T0 + 60_500))
})

test('over any 60 s the count never exceeds the limit (one request every 50 ms for three minutes)', () => {
  const l = limiter({ rules: [{ requestsPerMinute: 100 }] })
  const admitted: number[] = []
  for (let t = 0; t < 180_000; t += 50) {
    try {
      admitSync(l, acme, small, T0 + 7_321 + t)
      admitted.push(t)
    } catch (err) {
      assert.ok(err instanceof GatewayError && err.status === 429)
    }
  }
  for (let i = 0; i < admitted.length; i++) {
    let j = i
    while (j < admitted.length && admitted[j]! < admitted[i]! + 60_000) j++
    assert.ok(j - i <= 100, `${j - i} admitted in the 60 s from ${admitted[i]}`)
  }
  // And the limit is used, not starved: about 100 a minute over three minutes.
  assert.ok(admitted.length >= 295 && admitted.length <= 300, `${admitted.length} admitted`)
})

test('tokens: input is estimated and output reserved before dispatch, then reconciled with the real usage', () => {
  const l = limiter({ rules: [{ tokensPerMinute: 1000 }] })
  const a = admitSync(l, acme, { inputTokens: 100, outputTokens: 800 })
  refusal(() => l.admit(acme, { inputTokens: 100, outputTokens: 100 }, T0 + 1))
  a.settle({ inputTokens: 80, outputTokens: 20 }, true, T0 + 2)
  // 100 used of 1000: the next 900-token request fits, the one after does not.
  admitSync(l, acme, { inputTokens: 100, outputTokens: 800 }, T0 + 3)
  const err = refusal(() => l.admit(acme, small, T0 + 4))
  assert.match(err.message, /1000 tokens per minute/)
})

test('usage beyond the reservation is added; an unanswered request gives its tokens back', () => {
  const l = limiter({ rules: [{ tokensPerMinute: 1000 }] })
  admitSync(l, acme, { inputTokens: 100, outputTokens: 100 }).settle({ inputTokens: 100, outputTokens: 700 }, true, T0)
  refusal(() => l.admit(acme, { inputTokens: 100, outputTokens: 150 }, T0 + 1))
  const l2 = limiter({ rules: [{ tokensPerMinute: 1000 }] })
  const unanswered = admitSync(l2, acme, { inputTokens: 100, outputTokens: 800 }, T0)
  refusal(() => l2.admit(acme, { inputTokens: 100, outputTokens: 800 }, T0 + 1))
  unanswered.settle(null, false, T0 + 2)
  admitSync(l2, acme, { inputTokens: 100, outputTokens: 800 }, T0 + 3)
})

test('a request larger than the whole limit is refused without a Retry-After', () => {
  const l = limiter({ rules: [{ name: 'tiny', tokensPerMinute: 500 }] })
  const err = refusal(() => l.admit(acme, { inputTokens: 400, outputTokens: 400 }, T0))
  assert.equal(err.retryAfter, null)
  assert.match(err.message, /needs 800, more than the whole limit of 500/)
})

test('input and output token limits count their own side', () => {
  const l = limiter({ rules: [{ inputTokensPerMinute: 100, outputTokensPerMinute: 1000 }] })
  admitSync(l, acme, { inputTokens: 90, outputTokens: 10 })
  refusal(() => l.admit(acme, { inputTokens: 20, outputTokens: 10 }, T0 + 1))
  admitSync(l, acme, { inputTokens: 10, outputTokens: 900 }, T0 + 2)
})

test('budgets: tokens per UTC day are refused with insufficient_quota until midnight', () => {
  const l = limiter({ rules: [{ name: 'daily', tokensPerDay: 1000 }] })
  admitSync(l, acme, { inputTokens: 500, outputTokens: 400 })
  const err = refusal(() => l.admit(acme, { inputTokens: 100, outputTokens: 100 }, T0 + 3_600_000))
  assert.equal(err.code, 'GW_ERR_BUDGET_EXCEEDED')
  const body = JSON.parse(err.body()).error
  assert.equal(body.code, 'insufficient_quota')
  assert.equal(body.type, 'insufficient_quota')
  assert.equal(err.retryAfter, 11 * 3600, 'until the next UTC midnight')
  admitSync(l, acme, { inputTokens: 500, outputTokens: 400 }, Date.UTC(2026, 11, 2, 0, 0, 1))
})

test('cost budgets use the price table, by exact model or prefix', () => {
  const l = limiter({
    prices: { 'llama-*': { inputPerMillion: 1, outputPerMillion: 2 }, 'llama-3': { inputPerMillion: 10, outputPerMillion: 20 } },
    rules: [{ name: 'spend', costPerMonth: 0.05 }],
  })
  // llama-3 exact: 1000 in + 1000 out = 0.01 + 0.02 = 0.03
  const a = admitSync(l, acme, { inputTokens: 1000, outputTokens: 1000 })
  refusal(() => l.admit(acme, { inputTokens: 1000, outputTokens: 1000 }, T0 + 1))
  a.settle({ inputTokens: 1000, outputTokens: 0 }, true, T0 + 2) // 0.01 spent
  admitSync(l, acme, { inputTokens: 1000, outputTokens: 1000 }, T0 + 3)
  // the prefix price applies to other llama models: 1000 in + 1000 out = 0.003
  admitSync(l, { ...acme, model: 'llama-2' }, { inputTokens: 1000, outputTokens: 1000 }, T0 + 4)
  const err = refusal(() => l.admit(acme, { inputTokens: 1000, outputTokens: 1000 }, T0 + 5))
  assert.match(err.message, /0\.05 spend per month/)
})

test('concurrency: slots are held until the admission settles', () => {
  const l = limiter({ rules: [{ concurrent: 2 }] })
  const a = admitSync(l, acme)
  admitSync(l, acme)
  const err = refusal(() => l.admit(acme, small, T0))
  assert.equal(err.status, 429)
  a.settle(null, true)
  admitSync(l, acme)
})

test('match and per: a tenant rule shared by its keys, a per-key rule for each key, model prefixes', () => {
  const l = limiter({
    rules: [
      { name: 'tenant', match: { tenant: 'acme' }, requestsPerMinute: 3 },
      { name: 'each-key', match: { model: 'llama-*' }, per: ['key'], requestsPerMinute: 2 },
    ],
  })
  const k1 = acme
  const k2 = { ...acme, keyName: 'acme-2' }
  admitSync(l, k1)
  admitSync(l, k1)
  assert.match(refusal(() => l.admit(k1, small, T0)).message, /each-key/)
  admitSync(l, k2)
  assert.match(refusal(() => l.admit(k2, small, T0)).message, /tenant/)
  // A model outside the prefix is only under the tenant rule, which is spent.
  assert.match(refusal(() => l.admit({ ...k2, model: 'mistral' }, small, T0)).message, /tenant/)
  // Other tenants' keys get their own per-key counters.
  admitSync(l, { tenant: 'globex', keyName: 'g', model: 'llama-3' })
  admitSync(l, { tenant: 'globex', keyName: 'g', model: 'llama-3' })
})

test('a request refused by one rule takes nothing from the others', () => {
  const l = limiter({ rules: [{ name: 'wide', requestsPerMinute: 10 }, { name: 'narrow', match: { model: 'llama-3' }, requestsPerMinute: 1 }] })
  admitSync(l, acme)
  for (let i = 0; i < 5; i++) refusal(() => l.admit(acme, small, T0))
  for (let i = 0; i < 9; i++) admitSync(l, { ...acme, model: 'other' })
  refusal(() => l.admit({ ...acme, model: 'other' }, small, T0))
})

test('x-ratelimit headers name the tightest request and token limits', () => {
  const l = limiter({ rules: [{ requestsPerMinute: 100, tokensPerMinute: 10_000 }, { match: { tenant: 'acme' }, requestsPerMinute: 10 }] })
  admitSync(l, acme, { inputTokens: 1000, outputTokens: 1500 })
  const h = admitSync(l, acme, { inputTokens: 1000, outputTokens: 1500 }).headers()
  assert.ok(h !== null)
  const m = Object.fromEntries(h.names.map((n, i) => [n, h.values[i]]))
  assert.deepEqual(m, {
    'x-ratelimit-limit-requests': '10',
    'x-ratelimit-remaining-requests': '8',
    'x-ratelimit-reset-requests': '12s',
    'x-ratelimit-limit-tokens': '10000',
    'x-ratelimit-remaining-tokens': '5000',
    'x-ratelimit-reset-tokens': '30s',
  })
  assert.equal(limiter({ rules: [{ concurrent: 1 }] }).admit(acme, small, T0) instanceof Promise, false)
})

test('reset durations use OpenAI format', () => {
  assert.equal(formatReset(20), '20ms')
  assert.equal(formatReset(1_000), '1s')
  assert.equal(formatReset(360_000), '6m0s')
  assert.equal(formatReset(7_384_000), '2h3m4s')
  assert.equal(MINUTE.buckets, 121)
})

test('client-chosen model names do not grow the limiter without bound', () => {
  const store = new MemoryLimitStore()
  const l = new Limiter(LimitsSchema.parse({ rules: [{ per: ['model'], requestsPerMinute: 5 }] }), store)
  for (let i = 0; i < 2_000; i++) admitSync(l, { ...acme, model: `m-${i}-${'x'.repeat(1000)}` }, small, T0)
  assert.equal(l.sweep(T0 + 10 * 60_000), 0, 'idle counters are dropped')
  store.sweep(T0 + 10 * 60_000)
  assert.equal(store.size, 0, 'expired windows are dropped')
})

test('config: rules need a limit; model patterns are exact or a trailing *', () => {
  assert.throws(() => LimitsSchema.parse({ rules: [{ match: { tenant: 'a' } }] }), /at least one limit/)
  assert.throws(() => LimitsSchema.parse({ rules: [{ match: { model: 'a*b' }, requestsPerMinute: 1 }] }), /prefix ending/)
  assert.throws(() => LimitsSchema.parse({ rules: [{ requestsPerMinute: 1, typo: 1 }] }))
})
