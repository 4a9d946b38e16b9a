/**
 * parseBody (the byte scanner, json left unparsed) against the full parse it replaces, on request
 * bodies of four kinds and four sizes: microseconds per body, median of rounds. The kinds are one
 * long plain prompt, code (an escape every few bytes), many chat turns with quotes and escapes, and
 * a long array of token ids. The parse's garbage is not counted here; the scan makes none.
 *
 *   npx node gateway/benchmarks/micro/request-body.ts [--rounds 7]
 */
import { parseArgs } from 'node:util'
import { parseBody, parseObject } from '../../src/proxy/request-body.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } })
const rounds = Number(values.rounds)

const WORDS = 'the quick brown fox jumps over the lazy dog '
const CODE_LINE = 'def f(x):\n    return "value" + str(x)  # a line of code\t\u00e9\n'

function repeatTo(text: string, bytes: number): string {
  return text.repeat(Math.ceil(bytes / text.length)).slice(0, bytes)
}

const KINDS: Record<string, (bytes: number) => Buffer> = {
  prompt: (bytes) => Buffer.from(JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: repeatTo(WORDS, bytes) }], user: 'u-1' })),
  code: (bytes) => Buffer.from(JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: repeatTo(CODE_LINE, bytes) }], user: 'u-1' })),
  turns: (bytes) => {
    const messages: { role: string; content: string }[] = []
    for (let i = 0, size = 0; size < bytes; i++) {
      const content = `Turn ${i}: ${'the quick brown fox jumps over the lazy dog, "quoted" and \\escaped\\ text \u00e9\u00e8 '.repeat(4)}`
      messages.push({ role: i % 2 === 0 ? 'user' : 'assistant', content })
      size += content.length + 32
    }
    return Buffer.from(JSON.stringify({ model: 'bench-model', messages, stream: false, max_tokens: 16, user: 'u-1' }))
  },
  'token ids': (bytes) => Buffer.from(JSON.stringify({ model: 'bench-model', prompt: Array.from({ length: Math.ceil(bytes / 6) }, (_, i) => (i * 7919) % 100_000), user: 'u-1' })),
}

function time(fn: (raw: Buffer) => unknown, raw: Buffer): number {
  const iterations = Math.max(20, Math.floor(20_000_000 / raw.length))
  for (let i = 0; i < iterations / 4; i++) fn(raw)
  const samples: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    for (let i = 0; i < iterations; i++) fn(raw)
    samples.push(((performance.now() - t0) * 1000) / iterations)
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!
}

console.log('kind       body     scan (us)  full parse (us)  ratio')
for (const [kind, make] of Object.entries(KINDS)) {
  for (const bytes of [1024, 4 * 1024, 64 * 1024, 512 * 1024]) {
    const raw = make(bytes)
    const scan = time((b) => parseBody(b, 'user').text('user'), raw)
    const full = time((b) => parseObject(b).text('user'), raw)
    console.log(`${kind.padEnd(9)} ${String(Math.round(raw.length / 1024)).padStart(4)} KB  ${scan.toFixed(2).padStart(10)}  ${full.toFixed(2).padStart(15)}  ${(scan / full).toFixed(2).padStart(5)}`)
  }
}
