/**
 * The semantic cache measured the way a user meets it: labelled prompts sent as chat requests
 * through a running gateway (one partition: the same system prompt and parameters for all, as
 * one application's traffic would be), in one of two orders, reading what came back.
 *
 * - `interleaved`: each pair's first prompt, then its second (a repeat soon after the original);
 * - `burst-then-repeat`: every first prompt, then every second one (new questions arrive in a
 *   burst before their paraphrases).
 *
 * Each prompt is sent once. A response with `x-velox-cache: semantic-hit` is traced to the
 * stored prompt whose answer it carries (the upstream's answers differ per prompt). A hit is
 * right when that prompt is the request itself or labelled a paraphrase of it; any other hit is
 * a false hit. Recall counts the second prompts of should-hit pairs answered from their first.
 */
import type { LabelledPair } from './evaluate.ts'

export type TrafficOrder = 'interleaved' | 'burst-then-repeat'

export interface TrafficOptions {
  /** Gateway base URL (`http://127.0.0.1:port`). */
  readonly url: string
  readonly model: string
  readonly headers?: Record<string, string>
  /** Resolves once the gateway has stored `n` semantic entries in all (it stores after the answer ends). */
  readonly waitForStores?: (n: number) => Promise<void>
  readonly system?: string
}

export interface KindReport {
  /** Second prompts of this kind sent. */
  probes: number
  /** Of those, served from their labelled paraphrase (should-hit kinds). */
  served: number
  /** Responses of this kind served from a prompt that is not a paraphrase (must stay 0). */
  falseHits: number
}

export interface TrafficReport {
  readonly order: TrafficOrder
  readonly requests: number
  readonly semanticHits: number
  readonly exactHits: number
  /** Should-hit pairs whose second prompt was sent after its first. */
  readonly shouldHit: number
  readonly truePositives: number
  readonly falseHits: number
  readonly precision: number
  readonly recall: number
  readonly byKind: Record<string, KindReport>
  readonly falseHitExamples: { request: string; servedFrom: string }[]
  /** Every request in the order sent, with its `x-velox-cache` status. */
  readonly log: { text: string; status: string }[]
}

interface Sent {
  status: string
  content: string
}

export async function runTraffic(pairs: readonly LabelledPair[], order: TrafficOrder, opts: TrafficOptions): Promise<TrafficReport> {
  // Paraphrase classes: prompts labelled paraphrases of each other, transitively.
  const parent = new Map<string, string>()
  const find = (x: string): string => {
    let r = x
    while (parent.has(r) && parent.get(r) !== r) r = parent.get(r)!
    return r
  }
  for (const p of pairs) if (p.label === 'hit') parent.set(find(p.a), find(p.b))
  const same = (x: string, y: string): boolean => x === y || find(x) === find(y)
  const firsts = [...new Set(pairs.map((p) => p.a))]
  const firstSet = new Set(firsts)
  // A second prompt that is also some pair's first is sent as a first: it cannot be a probe.
  const seconds = [...new Set(pairs.map((p) => p.b))].filter((b) => !firstSet.has(b))
  const sequence: string[] = []
  if (order === 'burst-then-repeat') {
    sequence.push(...firsts, ...seconds)
  } else {
    const queued = new Set<string>()
    for (const p of pairs) {
      for (const t of [p.a, p.b]) {
        if (queued.has(t)) continue
        queued.add(t)
        sequence.push(t)
      }
    }
  }

  const sent = new Map<string, Sent>()
  const sourceOf = new Map<string, string>()
  let stores = 0
  for (const text of sequence) {
    const r = await ask(opts, text)
    sent.set(text, r)
    if (r.status === 'miss') {
      if (!sourceOf.has(r.content)) sourceOf.set(r.content, text)
      stores++
      // A user types their next question after reading this answer: by then it is stored.
      await opts.waitForStores?.(stores)
    }
  }

  const kindOf = new Map<string, string>()
  for (const p of pairs) if (!kindOf.has(p.b) || p.label === 'hit') kindOf.set(p.b, `${p.label}:${p.kind}`)
  for (const p of pairs) if (!kindOf.has(p.a)) kindOf.set(p.a, `first:${p.label === 'hit' ? p.kind : 'first'}`)
  const byKind: Record<string, KindReport> = {}
  const kindReport = (k: string): KindReport => (byKind[k] ??= { probes: 0, served: 0, falseHits: 0 })
  let falseHits = 0
  let semanticHits = 0
  let exactHits = 0
  const falseHitExamples: { request: string; servedFrom: string }[] = []
  for (const [text, r] of sent) {
    if (r.status === 'hit') exactHits++
    if (r.status !== 'semantic-hit') continue
    semanticHits++
    const from = sourceOf.get(r.content) ?? '(unknown answer)'
    if (!same(from, text)) {
      falseHits++
      kindReport(kindOf.get(text)!).falseHits++
      if (falseHitExamples.length < 10) falseHitExamples.push({ request: text, servedFrom: from })
    }
  }
  let shouldHit = 0
  let truePositives = 0
  const position = new Map(sequence.map((t, i) => [t, i]))
  for (const p of pairs) {
    if (!seconds.includes(p.b)) continue
    const k = kindReport(`${p.label}:${p.kind}`)
    k.probes++
    if (p.label !== 'hit' || position.get(p.a)! > position.get(p.b)!) continue
    shouldHit++
    const r = sent.get(p.b)!
    if (r.status === 'semantic-hit' && same(p.b, sourceOf.get(r.content) ?? '')) {
      truePositives++
      k.served++
    }
  }
  const served = truePositives + falseHits
  return {
    order,
    requests: sequence.length,
    semanticHits,
    exactHits,
    shouldHit,
    truePositives,
    falseHits,
    precision: served === 0 ? 1 : truePositives / served,
    recall: shouldHit === 0 ? 0 : truePositives / shouldHit,
    byKind,
    falseHitExamples,
    log: sequence.map((text) => ({ text, status: sent.get(text)!.status })),
  }
}

async function ask(opts: TrafficOptions, text: string): Promise<Sent> {
  const body = {
    model: opts.model,
    temperature: 0,
    max_tokens: 12,
    messages: [
      { role: 'system', content: opts.system ?? 'You are a helpful assistant. Answer in one short paragraph.' },
      { role: 'user', content: text },
    ],
  }
  const res = await fetch(`${opts.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: JSON.stringify(body),
  })
  const json = (await res.json()) as { choices?: { message?: { content?: string } }[] }
  if (res.status !== 200) throw new Error(`gateway answered ${res.status} for ${JSON.stringify(text)}`)
  return { status: res.headers.get('x-velox-cache') ?? 'none', content: json.choices?.[0]?.message?.content ?? '' }
}
