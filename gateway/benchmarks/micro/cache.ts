/**
 * Response cache micro-benchmarks: plan + exact hit, semantic index search at 10k and 100k
 * entries, embedding latency, verification cost, precision / recall on the labelled development
 * and test sets, and (with `--traffic`) both sets sent through a real gateway in both orders.
 *
 *   npx node gateway/benchmarks/micro/cache.ts [--quick] [--traffic] [--out bench-results/cache.json]
 *
 * `--quick` stops the index benchmark at 10k entries (building 100k 512-d vectors into HNSW takes
 * about a minute on two cores).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import { CacheConfigSchema } from '../../src/cache/config.ts'
import { ResponseCache, type CacheRequest } from '../../src/cache/index.ts'
import { readPairs, report, scorePairs, type PairReport, type ScoredPair } from '../../src/cache/semantic/evaluate.ts'
import { LexicalVerifier } from '../../src/cache/semantic/lexical-verifier.ts'
import { LocalEmbedder } from '../../src/cache/semantic/local-embedder.ts'
import { trafficEval } from '../lib/semantic-traffic.ts'
import { PartitionIndex } from '../../src/cache/semantic/vector-index.ts'
import { canonicalBody, digest } from '../../src/cache/canonical.ts'

interface Stat {
  p50_us: number
  p99_us: number
  mean_us: number
}

function stats(samplesMs: number[]): Stat {
  const s = samplesMs.slice().sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 1000
  return { p50_us: round(at(0.5)), p99_us: round(at(0.99)), mean_us: round((s.reduce((a, b) => a + b, 0) / s.length) * 1000) }
}

const round = (x: number) => Math.round(x * 100) / 100

/** Mean cost of a fast operation, timed in batches so the timer's own cost does not dominate. */
function perOp(fn: () => void, batches = 200, perBatch = 100): Stat {
  for (let i = 0; i < 2_000; i++) fn()
  const samples: number[] = []
  for (let b = 0; b < batches; b++) {
    const t = performance.now()
    for (let i = 0; i < perBatch; i++) fn()
    samples.push((performance.now() - t) / perBatch)
  }
  return stats(samples)
}

function typicalChat(): CacheRequest {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant for an online bookshop. Answer briefly and cite the catalogue id when you mention a book.' },
    ...Array.from({ length: 5 }, (_, i) => ({
      role: i % 2 === 0 ? 'user' : 'assistant',
      content: `Turn ${i}: ` + 'I am looking for a novel set in Lisbon, ideally under four hundred pages, with a strong narrator. '.repeat(2),
    })),
  ]
  const body = { model: 'llama-3.1-8b', temperature: 0, max_tokens: 256, top_p: 1, stream: true, stream_options: { include_usage: true }, messages }
  return { tenant: 'acme', endUser: null, endpoint: 'chat.completions', model: 'meta-llama/Llama-3.1-8B-Instruct', body, headers: { 'content-type': 'application/json' } }
}

async function exactBench(): Promise<Record<string, unknown>> {
  const cache = await ResponseCache.create(CacheConfigSchema.parse({}), { keyPrefix: 'bench:', connectTimeoutMs: 100, commandTimeoutMs: 50 }, new Registry(), { warn() {}, info() {} })
  const req = typicalChat()
  const bodyBytes = JSON.stringify(req.body).length
  const plan = cache.plan(req)
  if (plan.mode !== 'lookup') throw new Error('bench request should be cacheable')
  const answer = JSON.stringify({
    id: 'chatcmpl-b', object: 'chat.completion', created: 1, model: req.model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'Try "The Book of Disquiet" (cat-1182). '.repeat(12) }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 300, completion_tokens: 120, total_tokens: 420 },
  })
  cache.commit(plan, 'application/json', Buffer.from(answer))
  const key = perOp(() => digest('t:acme', 'chat.completions', canonicalBody(req.body, req.model)))
  const planCost = perOp(() => cache.plan(req))
  const lookupCost = perOp(() => cache.lookup(plan))
  const both = perOp(() => cache.lookup(cache.plan(req)))
  await cache.close()
  return { body_bytes: bodyBytes, answer_bytes: answer.length, canonical_key: key, plan: planCost, memory_lookup_hit: lookupCost, plan_plus_lookup_hit: both }
}

/** Unit vectors around a few hundred topics: closer to real embeddings than uniform noise. */
function clusteredVectors(n: number, dim: number, seed: number): Float32Array[] {
  let s = seed
  const rand = () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31) * 2 - 1
  const centres = Array.from({ length: 512 }, () => Float32Array.from({ length: dim }, rand))
  return Array.from({ length: n }, (_, i) => {
    const c = centres[i % centres.length]!
    const v = new Float32Array(dim)
    let norm = 0
    for (let d = 0; d < dim; d++) {
      v[d] = c[d]! + 0.6 * rand()
      norm += v[d]! * v[d]!
    }
    norm = Math.sqrt(norm)
    for (let d = 0; d < dim; d++) v[d]! /= norm
    return v
  })
}

function indexBench(n: number): Record<string, unknown> {
  const dim = 512
  const vectors = clusteredVectors(n, dim, 7)
  const idx = new PartitionIndex(dim, CacheConfigSchema.parse({}).semantic.exactScanMax)
  const t = performance.now()
  vectors.forEach((v, i) => idx.add(i + 1, v))
  const buildS = (performance.now() - t) / 1000
  const queries = clusteredVectors(2_000, dim, 99)
  for (let i = 0; i < 200; i++) idx.search(queries[i]!, 4)
  const samples: number[] = []
  let selfFound = 0
  for (const q of queries) {
    const t0 = performance.now()
    idx.search(q, 4)
    samples.push(performance.now() - t0)
  }
  for (let i = 0; i < 500; i++) if (idx.search(vectors[i * Math.floor(n / 500)]!, 1)[0]?.label === i * Math.floor(n / 500) + 1) selfFound++
  return { entries: n, dim, graph: idx.usesGraph, build_s: round(buildS), search_k4: stats(samples), self_recall_at_1: selfFound / 500 }
}

async function embeddingBench(embedder: LocalEmbedder): Promise<Record<string, unknown>> {
  const texts = ['How do I reverse a list in Python?', 'What is the capital of France and why did it become the capital?', 'Explain quantum entanglement to a ten year old in two sentences.']
  for (let i = 0; i < 5; i++) await embedder.embed(texts[i % 3]!)
  const samples: number[] = []
  for (let i = 0; i < 60; i++) {
    const t = performance.now()
    await embedder.embed(texts[i % 3]! + ' ' + i)
    samples.push(performance.now() - t)
  }
  const t = performance.now()
  await Promise.all(Array.from({ length: 32 }, (_, i) => embedder.embed(texts[i % 3]! + ' #' + i)))
  const batchedMs = (performance.now() - t) / 32
  return { embedder: embedder.id, sequential: stats(samples), concurrent_32_mean_ms: round(batchedMs) }
}

interface SetReport extends PairReport {
  readonly set: 'dev' | 'test'
}

/** Pair-level precision and recall (threshold, then the lexical verifier) on both labelled sets. */
async function pairBench(embedder: LocalEmbedder, verifier: LexicalVerifier): Promise<SetReport[]> {
  const out: SetReport[] = []
  for (const set of ['dev', 'test'] as const) {
    const pairs = readPairs(fileURLToPath(new URL(`../../../test/fixtures/cache/pairs-${set}.jsonl`, import.meta.url)))
    const scored: ScoredPair[] = await scorePairs(embedder, verifier, pairs)
    for (const t of [0.7, 0.8, 0.85, 0.9]) {
      const r = report(scored, t)
      out.push({ ...r, set, falsePositivePairs: r.falsePositivePairs.slice(0, 5) })
    }
  }
  return out
}

/** Cost of one verification, warm (the WordNet synsets of these words already read once). */
function verifierBench(verifier: LexicalVerifier): Stat {
  const pairs: [string, string][] = [
    ['What is the capital of France?', 'Which city is the capital of France?'],
    ['How do I fix a leaky faucet?', 'How can I repair a leaky faucet?'],
    ['What are the advantages of remote work?', 'What are the disadvantages of remote work?'],
  ]
  let i = 0
  return perOp(() => {
    const [a, b] = pairs[i++ % pairs.length]!
    verifier.judge(a, b)
  }, 50, 20)
}

/** Semantic partition through the real gateway, both traffic orders, both sets. */
async function trafficBench(): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  for (const set of ['dev', 'test'] as const) {
    const pairs = readPairs(fileURLToPath(new URL(`../../../test/fixtures/cache/pairs-${set}.jsonl`, import.meta.url)))
    for (const order of ['interleaved', 'burst-then-repeat'] as const) {
      const r = await trafficEval(pairs, order)
      out.push({ set, ...r })
    }
  }
  return out
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const quick = args.includes('--quick')
  const outIdx = args.indexOf('--out')
  const out = outIdx >= 0 ? args[outIdx + 1]! : 'bench-results/cache.json'

  const exact = await exactBench()
  const index = [indexBench(10_000)]
  if (!quick) index.push(indexBench(100_000))
  const embedder = await LocalEmbedder.start()
  const verifier = new LexicalVerifier()
  const embedding = await embeddingBench(embedder)
  const pairs = await pairBench(embedder, verifier)
  const verification = verifierBench(verifier)
  await embedder.close()
  await verifier.close()
  // About 15 minutes (both sets, both orders, each miss waits for the simulated model): opt-in.
  const traffic = args.includes('--traffic') ? await trafficBench() : []

  const e = exact as Record<string, Stat | number>
  const rows: [string, string, string][] = [
    [`canonical key (${e.body_bytes} B body)`, `${(e.canonical_key as Stat).mean_us} us`, ''],
    ['plan()', `${(e.plan as Stat).mean_us} us`, ''],
    ['memory lookup, hit', `${(e.memory_lookup_hit as Stat).mean_us} us`, 'includes brotli decompress'],
    ['plan + lookup, hit', `${(e.plan_plus_lookup_hit as Stat).mean_us} us`, ''],
    ...index.map((r): [string, string, string] => {
      const s = r.search_k4 as Stat
      return [`index search k=4, ${r.entries} entries`, `p50 ${s.p50_us} us, p99 ${s.p99_us} us`, `build ${r.build_s} s, self-recall ${r.self_recall_at_1}`]
    }),
    ['embedding (USE lite, worker)', `p50 ${round((embedding.sequential as Stat).p50_us / 1000)} ms, p99 ${round((embedding.sequential as Stat).p99_us / 1000)} ms`, `${embedding.concurrent_32_mean_ms} ms each when 32 are batched`],
    ['verification (lexical, WordNet), warm', `${verification.mean_us} us`, 'per candidate pair'],
    ...pairs.map((p): [string, string, string] => [`pairs-${p.set} @ ${p.threshold}`, `precision ${p.precision.toFixed(3)}`, `recall ${p.recall.toFixed(3)} (${p.truePositives}/${p.shouldHit}; ${p.falsePositives} false of ${p.mustNotHit} must-not-hit)`]),
    ...traffic.map((t): [string, string, string] => [
      `gateway, pairs-${t.set as string}, ${t.order as string}`,
      `${t.falseHits as number} false hits`,
      `recall ${(t.recall as number).toFixed(3)} (${t.truePositives as number}/${t.shouldHit as number}), ${t.requests as number} requests`,
    ]),
  ]
  const w0 = Math.max(...rows.map((r) => r[0].length))
  const w1 = Math.max(...rows.map((r) => r[1].length))
  console.log(`${'benchmark'.padEnd(w0)}  ${'result'.padEnd(w1)}  notes`)
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`)

  const result = { node: process.version, date: new Date().toISOString(), exact, index, embedding, verification, pairs, traffic }
  mkdirSync(path.dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify(result, null, 2))
  console.log(`\nwrote ${out}`)
}

await main()
