/**
 * The details a sentence embedding blurs: "Is 17 prime?" and "Is 21 prime?" embed almost alike.
 * A semantic hit requires both texts to carry exactly the same numbers and named entities (in the
 * same order), code spans, URLs, quoted strings, identifiers and negation: that is the detail
 * signature, compared as one string. The content words ("capital", "old", "reverse") are returned
 * beside it for the verifier, which aligns them allowing synonyms. The signature errs towards a
 * miss: a detail spelled differently (lower-case "france") simply does not match.
 */

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi
const FENCED_RE = /```[\s\S]*?```/g
const INLINE_CODE_RE = /`[^`\n]+`/g
const QUOTED_RE = /"([^"\n]{1,200})"|“([^”\n]{1,200})”/g
const NUMBER_RE = /[-+]?(?:\d[\d,_]*)?\.?\d+(?:e[-+]?\d+)?%?/gi
const WORD_RE = /[\p{L}\p{N}][\p{L}\p{N}_.'’-]*/gu
const NEGATION = new Set(['not', 'no', 'never', 'none', 'nobody', 'nothing', 'neither', 'nor', 'without', 'cannot', "n't"])

const NUMBER_WORDS: Record<string, string> = {
  zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
  eleven: '11', twelve: '12', thirteen: '13', fourteen: '14', fifteen: '15', sixteen: '16', seventeen: '17', eighteen: '18',
  nineteen: '19', twenty: '20', thirty: '30', forty: '40', fifty: '50', sixty: '60', seventy: '70', eighty: '80', ninety: '90',
  hundred: '100', thousand: '1000', million: '1000000', billion: '1000000000', half: '0.5', dozen: '12', first: '1st', second: '2nd', third: '3rd',
}

/**
 * Words that carry no topic: function words and the phrasing of a request ("what's the way to",
 * "can you explain"). Every other word is a content word, which the verifier must align with the
 * other text: a sentence embedding scores "encrypt" and "decrypt", or "largest" and "smallest",
 * as near-identical, so a swapped content word means a miss. Directions ("up", "down", "out")
 * and speed ("quickly") change the answer, so they are content words.
 */
const FILLER = new Set(
  (
    'a an the i me my mine we us our you your it its they them their this that these those there here ' +
    'what whats which who whom whose when where why how is are was were be been being am do does did doing done ' +
    'can could would should will shall may might must have has had having please kindly tell give show explain ' +
    'explanation describe description define definition summarize summarise summary list name know let lets ' +
    'in on at for from by with about of to as than then so and or but if ' +
    'also any some all each every just really very quite actually exactly basically simply simple simplest brief briefly ' +
    'short way ways best good right correct proper properly possible usually typically generally ' +
    'thing things something anything stuff one ones get got use using used make made go going want need needed ' +
    'like help hi hello hey thanks thank you\'re it\'s what\'s that\'s there\'s how\'s who\'s where\'s ' +
    'option options step steps method methods mean means meaning able cause causes main many between ' +
    'happen happens item items find create build'
  ).split(' '),
)

function stem(lower: string): string {
  let w = lower.replace(/['’]s$/, '')
  if (w.length > 3 && w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us')) w = w.slice(0, -1)
  return w.length <= 5 ? w : w.slice(0, 5)
}

/**
 * Capitalised words that start sentences without naming anything. A capitalised word that is
 * not sentence-initial, or is initial but not in this list, counts as a named entity.
 */
const COMMON_INITIAL = new Set(
  (
    'a an the i i\'m i\'d i\'ve i\'ll me my we our you your he she it its they their this that these those there here ' +
    'what what\'s whats which who whom whose when where why how how\'s is are was were be been am do does did done can could ' +
    'would should will shall may might must have has had please kindly tell give show explain describe define list name write ' +
    'summarize summarise translate compare create make generate find help suggest recommend provide calculate compute convert ' +
    'rewrite fix solve check is isn\'t are aren\'t does doesn\'t do don\'t can\'t won\'t in on at for from by with about of to ' +
    'and or but if so as also any some all each every no not yes ok okay hi hello hey thanks thank quick briefly brief simple ' +
    'simply short in-short let let\'s could you would you give me tell me explain me outline detail draft compose produce ' +
    'state identify determine mention say elaborate illustrate clarify discuss analyze analyse evaluate estimate predict ' +
    'one two three best good bad most more less why\'s where\'s who\'s whats\'s using use via into over under after before ' +
    'difference differences example examples way ways steps step need want like looking trying just really very'
  ).split(' '),
)

/**
 * Filler words that name a topic once they are nouns: "What causes rain?" asks what "the causes
 * of rain" are, but "the causes of the French Revolution" is not "the French Revolution". After a
 * determiner or a qualifier they are content words.
 */
const NOUN_WHEN_DETERMINED = new Set(['cause', 'causes'])
const DETERMINING = new Set(['the', 'a', 'an', 'its', 'their', 'main', 'root', 'primary', 'major', 'common', 'possible', 'biggest', 'real'])

const FIRST_PERSON = new Set(['i', "i'm", "i'd", "i've", "i'll", 'i’m', 'i’d', 'i’ve', 'i’ll'])

function normNumber(raw: string): string {
  let s = raw.replace(/[,_]/g, '')
  if (s.startsWith('+')) s = s.slice(1)
  const pct = s.endsWith('%')
  if (pct) s = s.slice(0, -1)
  const n = Number(s)
  return (Number.isFinite(n) ? String(n) : s) + (pct ? '%' : '')
}

export interface TextAnalysis {
  /** Sorted, de-duplicated exact details (numbers, entities in order, code, URLs, quotes, negation) as one string. */
  readonly signature: string
  /** Content words in text order, lower-case, as written (no stemming): what the verifier aligns. */
  readonly content: readonly string[]
  /** The word right before each content word (lower-case), for answer-type nouns ("which city"). */
  readonly before: readonly string[]
}

/** Sorted, de-duplicated list of the exact details in `text`, joined into one comparable string. */
export function detailSignature(text: string): string {
  return analyzeText(text).signature
}

export function analyzeText(text: string): TextAnalysis {
  const parts: string[] = []
  let rest = text
  rest = rest.replace(FENCED_RE, (m) => {
    parts.push('c:' + m.slice(3, -3).trim())
    return ' '
  })
  rest = rest.replace(INLINE_CODE_RE, (m) => {
    parts.push('c:' + m.slice(1, -1).trim())
    return ' '
  })
  rest = rest.replace(URL_RE, (m) => {
    parts.push('u:' + m.replace(/[.,;:!?)\]]+$/, '').toLowerCase())
    return ' '
  })
  rest = rest.replace(QUOTED_RE, (_m, a: string | undefined, b: string | undefined) => {
    parts.push('q:' + (a ?? b ?? '').trim().toLowerCase())
    return ' '
  })
  // Thousands separators: "1,000" is one number, not 1 and 0.
  rest = rest.replace(/(\d)[,_](?=\d{3}(?!\d))/g, '$1')
  const ordered: string[] = []
  const content: string[] = []
  const preceding: string[] = []
  let prevLower = ''
  let negated = false
  let sentenceStart = true
  for (const m of rest.matchAll(WORD_RE)) {
    const word = m[0].replace(/[.'’-]+$/, '').replace(/['’]s$/, '')
    const idx = m.index
    const before = idx > 0 ? rest.slice(Math.max(0, idx - 3), idx) : ''
    if (idx === 0 || /[.!?:\n]\s*$/.test(before)) sentenceStart = true
    const lower = word.toLowerCase()
    if (NEGATION.has(lower) || lower.endsWith("n't") || lower.endsWith('n’t')) negated = true
    if (/\d/.test(word)) {
      // Numbers and identifiers with digits (gpt-4, 3.5, v2, 1st) must match exactly.
      if (/^[-+]?[\d,_.]+%?$/.test(word)) {
        for (const n of word.match(NUMBER_RE) ?? []) ordered.push('n:' + normNumber(n))
      } else {
        ordered.push('i:' + lower)
      }
    } else if (NUMBER_WORDS[lower] !== undefined) {
      ordered.push('n:' + NUMBER_WORDS[lower])
    } else if (/[_]/.test(word) || /\p{Ll}\p{Lu}/u.test(word) || /\.\p{L}/u.test(word)) {
      // snake_case, camelCase/iPhone, file.ext and dotted names.
      ordered.push('i:' + word)
    } else if (FIRST_PERSON.has(lower)) {
      // "I" is capitalised everywhere and names nobody.
    } else if (/^\p{Lu}/u.test(word)) {
      const acronym = word.length > 1 && word === word.toUpperCase()
      if (acronym || !sentenceStart || !COMMON_INITIAL.has(lower)) ordered.push('e:' + lower)
      else if (!FILLER.has(lower)) {
        content.push(lower)
        preceding.push(prevLower)
      }
    } else if ((!FILLER.has(lower) || (NOUN_WHEN_DETERMINED.has(lower) && DETERMINING.has(prevLower))) && !NEGATION.has(lower) && !lower.endsWith("n't") && !lower.endsWith('n’t')) {
      content.push(lower)
      preceding.push(prevLower)
    }
    sentenceStart = false
    prevLower = lower
  }
  if (negated) parts.push('neg')
  // Order matters for entities and numbers: "Celsius to Fahrenheit" is not "Fahrenheit to Celsius".
  if (ordered.length > 0) parts.push('o:' + ordered.join('\u0002'))
  let signature = ''
  if (parts.length > 0) {
    parts.sort()
    signature = parts[0]!
    for (let i = 1; i < parts.length; i++) if (parts[i] !== parts[i - 1]) signature += '\u0001' + parts[i]
  }
  return { signature, content, before: preceding }
}

/** Light stem: a plural or possessive `s` dropped, then the first five letters. */
export function lightStem(lower: string): string {
  return stem(lower)
}
