import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type EngineClock, type EngineSink, VllmEngine, resolveVllmOptions } from '../../../gateway/src/simulator/engine.ts'
import { KvCache } from '../../../gateway/src/simulator/kv-cache.ts'
import { enginePrompt, renderPrompt } from '../../../gateway/src/simulator/prompt.ts'

/** A virtual clock: timers run only when the test advances time. */
class ManualClock implements EngineClock {
  t = 0
  private timers: { at: number; fn: () => void; id: number }[] = []
  private seq = 0
  now(): number {
    return this.t
  }
  after(ms: number, fn: () => void): unknown {
    const id = ++this.seq
    this.timers.push({ at: this.t + ms, fn, id })
    return id
  }
  cancel(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle)
  }
  runUntil(done: () => boolean): void {
    while (!done() && this.timers.length > 0) this.run(Math.min(...this.timers.map((x) => x.at)))
  }
  /** Runs timers in time order until none is left (or `until` is reached). */
  run(until = Number.POSITIVE_INFINITY): void {
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at)
      const next = this.timers[0]
      if (next === undefined || next.at > until) break
      this.timers.shift()
      this.t = next.at
      next.fn()
    }
    if (until !== Number.POSITIVE_INFINITY) this.t = until
  }
}

class Recorder implements EngineSink {
  tokens: number[] = []
  times: number[] = []
  readonly clock: ManualClock
  constructor(clock: ManualClock) {
    this.clock = clock
  }
  onToken(index: number): void {
    this.tokens.push(index)
    this.times.push(this.clock.now())
  }
  get ttft(): number {
    return this.times[0]!
  }
  get done(): boolean {
    return this.times.length > 0 && this.tokens.at(-1) === this.tokens.length - 1 && this.finished
  }
  finished = false
}

function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} is not ${expected}`)
}

function chat(system: string, user: string): Record<string, unknown> {
  return { model: 'm', messages: [{ role: 'system', content: system }, { role: 'user', content: user }] }
}

const LONG = 'You are a careful assistant. '.repeat(80) // ~2300 chars, ~580 tokens

describe('KV cache', () => {
  test('finds the cached leading blocks, and only a matching chain', () => {
    const kv = new KvCache(16)
    const a = Float64Array.of(1, 2, 3)
    const blocks = kv.allocate(a, 0, 4)!
    assert.equal(kv.used, 4)
    kv.register(blocks, a, 0)
    assert.equal(kv.cachedPrefix(a), 3)
    assert.equal(kv.cachedPrefix(Float64Array.of(1, 2, 9)), 2)
    assert.equal(kv.cachedPrefix(Float64Array.of(9, 2, 3)), 0)
    kv.release(blocks)
    assert.equal(kv.used, 0)
    assert.equal(kv.cachedPrefix(a), 3, 'released blocks keep their content')
  })

  test('evicts the least recently released cached block first, and refuses what does not fit', () => {
    const kv = new KvCache(4)
    const first = kv.allocate(Float64Array.of(10), 0, 1)!
    kv.register(first, Float64Array.of(10), 0)
    const second = kv.allocate(Float64Array.of(20), 0, 1)!
    kv.register(second, Float64Array.of(20), 0)
    kv.release(first)
    kv.release(second)
    assert.equal(kv.allocate(Float64Array.of(), 0, 5), null, 'five blocks never fit in four')
    assert.equal(kv.used, 0, 'a refused allocation claims nothing')
    // Two empty blocks, then one eviction: the block released first (hash 10) goes.
    const big = kv.allocate(Float64Array.of(), 0, 3)!
    assert.equal(kv.cachedPrefix(Float64Array.of(10)), 0)
    assert.equal(kv.cachedPrefix(Float64Array.of(20)), 1)
    kv.release(big)
  })

  test('a cached block held by a running request cannot be evicted', () => {
    const kv = new KvCache(2)
    const held = kv.allocate(Float64Array.of(7), 0, 1)!
    kv.register(held, Float64Array.of(7), 0)
    assert.equal(kv.allocate(Float64Array.of(), 0, 2), null)
    const reuse = kv.allocate(Float64Array.of(7), 1, 1)!
    assert.equal(reuse[0], held[0], 'the second request shares the cached block')
    assert.equal(kv.used, 2)
  })
})

describe('prompt rendering', () => {
  test('chat messages render in order with role markers; blocks are chained', () => {
    assert.equal(renderPrompt(chat('S', 'U')), '<|system|>S\n<|user|>U\n<|assistant|>')
    const a = enginePrompt(chat(LONG, 'question one '.repeat(10)), 16)
    const b = enginePrompt(chat(LONG, 'question two '.repeat(10)), 16)
    const c = enginePrompt(chat('x' + LONG, 'question one'), 16)
    assert.ok(a.hashes.length > 30)
    let shared = 0
    while (shared < a.hashes.length && a.hashes[shared] === b.hashes[shared]) shared++
    assert.ok(shared >= Math.floor(LONG.length / 64) - 1, 'a shared system prompt gives shared blocks')
    assert.notEqual(a.hashes.at(-1), b.hashes.at(-1))
    assert.notEqual(a.hashes[0], c.hashes[0], 'one character in front changes every block')
    assert.equal(a.tokens, Math.ceil(renderPrompt(chat(LONG, 'question one '.repeat(10))).length / 4))
  })
})

describe('vLLM engine', () => {
  const opts = { maxBatch: 2, maxBatchedTokens: 4096, kvBlocks: 1024, blockTokens: 16, prefillMsPerToken: 0.1, stepMs: 5, decodeMsPerSeq: 1, timeScale: 1 }

  test('prefill time follows the uncached prompt: a repeated prefix answers sooner', () => {
    const clock = new ManualClock()
    const engine = new VllmEngine(opts, clock)
    const first = new Recorder(clock)
    const prompt = enginePrompt(chat(LONG, 'first'), 16)
    engine.submit(prompt, 4, first)
    clock.run()
    // One step: 5 ms + every prompt token x 0.1 ms.
    near(first.ttft, 5 + prompt.tokens * 0.1)
    const start = clock.t
    const second = new Recorder(clock)
    const again = enginePrompt(chat(LONG, 'second'), 16)
    engine.submit(again, 4, second)
    clock.run()
    const cached = engine.counters.prefixHits
    assert.ok(cached > 500, `most of the shared prompt came from the cache (${cached} tokens)`)
    near(second.ttft - start, 5 + (again.tokens - cached) * 0.1)
    assert.equal(engine.counters.prefixQueries, prompt.tokens + again.tokens)
  })

  test('continuous batching up to maxBatch; the rest waits in order', () => {
    const clock = new ManualClock()
    const engine = new VllmEngine(opts, clock)
    const sinks = [0, 1, 2].map(() => new Recorder(clock))
    sinks.forEach((s, i) => engine.submit(enginePrompt(chat('short', `q${i}`), 16), 3, s))
    // Admission happens at the first step, synchronously with the first submit.
    assert.equal(engine.numRunning, 1)
    assert.equal(engine.numWaiting, 2)
    clock.runUntil(() => sinks[0]!.tokens.length > 0) // the first step (one prefill) ends
    assert.equal(engine.numRunning, 2)
    assert.equal(engine.numWaiting, 1)
    clock.run()
    assert.deepEqual(sinks.map((s) => s.tokens), [[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    assert.ok(sinks[2]!.ttft > sinks[1]!.ttft && sinks[1]!.ttft > sinks[0]!.ttft)
    assert.equal(engine.numRunning + engine.numWaiting, 0)
    assert.equal(engine.kv.used, 0, 'finished requests hold no blocks')
  })

  test('decode steps slow down as the batch grows', () => {
    const gaps = (batch: number): number => {
      const clock = new ManualClock()
      const engine = new VllmEngine({ ...opts, maxBatch: 8 }, clock)
      const sinks = Array.from({ length: batch }, () => new Recorder(clock))
      sinks.forEach((s, i) => engine.submit(enginePrompt(chat('p', String(i)), 16), 6, s))
      clock.run()
      const t = sinks[0]!.times
      return t[5]! - t[4]!
    }
    near(gaps(1), 5 + 1)
    near(gaps(4), 5 + 4)
  })

  test('a request that does not fit in free KV blocks waits until blocks are released', () => {
    const clock = new ManualClock()
    const engine = new VllmEngine({ ...opts, maxBatch: 8, kvBlocks: 10 }, clock)
    const a = new Recorder(clock)
    const b = new Recorder(clock)
    const prompt = (s: string) => enginePrompt({ model: 'm', prompt: s.repeat(64 * 5) }, 16) // 80 tokens = 5 blocks + output
    engine.submit(prompt('a'), 16, a) // 6 blocks
    engine.submit(prompt('b'), 16, b) // 6 more: only 4 left
    clock.run(clock.t + 1)
    assert.equal(engine.numRunning, 1)
    assert.equal(engine.numWaiting, 1)
    clock.run()
    assert.ok(b.ttft > a.times.at(-1)!, 'the second starts after the first freed its blocks')
    assert.equal(engine.submit(enginePrompt({ model: 'm', prompt: 'x'.repeat(64 * 11) }, 16), 1, a), null, 'larger than the whole cache')
  })

  test('a cancelled request leaves the batch and frees its blocks', () => {
    const clock = new ManualClock()
    const engine = new VllmEngine(opts, clock)
    const s = new Recorder(clock)
    const req = engine.submit(enginePrompt(chat(LONG, 'q'), 16), 100, s)!
    clock.run(clock.t + 200)
    assert.ok(s.tokens.length > 1)
    engine.cancel(req)
    const seen = s.tokens.length
    clock.run()
    assert.equal(s.tokens.length, seen)
    assert.equal(engine.numRunning, 0)
    assert.equal(engine.kv.used, 0)
  })

  test('metrics use vLLM names', () => {
    const clock = new ManualClock()
    const engine = new VllmEngine(opts, clock)
    engine.submit(enginePrompt(chat(LONG, 'q'), 16), 2, new Recorder(clock))
    engine.submit(enginePrompt(chat(LONG, 'r'), 16), 2, new Recorder(clock))
    engine.submit(enginePrompt(chat(LONG, 's'), 16), 2, new Recorder(clock))
    const text = engine.metricsText('org/model')
    assert.match(text, /^vllm:num_requests_running\{engine="0",model_name="org\/model"\} 1\.0$/m)
    assert.match(text, /^vllm:num_requests_waiting\{engine="0",model_name="org\/model"\} 2\.0$/m)
    assert.match(text, /^vllm:kv_cache_usage_perc\{[^}]*\} 0\.0\d+$/m)
    assert.match(text, /^# TYPE vllm:prefix_cache_queries_total counter$/m)
    assert.match(text, /^vllm:prefix_cache_hits_total\{[^}]*\} 0\.0$/m)
  })

  test('options are checked', () => {
    assert.throws(() => resolveVllmOptions({ maxBatch: 0 }), /maxBatch must be a positive integer/)
    assert.throws(() => resolveVllmOptions({ timeScale: 0 }), /timeScale must be a positive number/)
    assert.throws(() => resolveVllmOptions({ bogus: 1 } as never), /unknown vllm option "bogus"/)
  })
})
