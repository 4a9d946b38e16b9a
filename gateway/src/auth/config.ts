import { z } from 'zod'
import { PLAIN_NAME } from '../config/primitives.ts'

/** `sha256:` + 64 hex digits: the digest of an API key; keys themselves are never stored. */
export const KEY_HASH = /^sha256:[0-9a-f]{64}$/

/** Priority classes, highest first: when upstreams saturate, lower classes are shed first. */
export const PRIORITIES = ['critical', 'high', 'normal', 'low', 'batch'] as const
export type Priority = (typeof PRIORITIES)[number]

export const ApiKeySchema = z.strictObject({
  /** Label for logs and metrics (the key itself is never logged). */
  name: z.string().regex(PLAIN_NAME),
  /** `sha256:<hex>` of the key; make one with `npm run hash-key`. */
  hash: z.string().regex(KEY_HASH, 'expected sha256:<64 lowercase hex digits>'),
  /** Tenant the key belongs to: the scope of cached answers and limits. */
  tenant: z.string().regex(PLAIN_NAME),
  /** Public model names this key may use; `"*"` for all. */
  models: z.array(z.string().min(1)).min(1).default(['*']),
  /** After this instant (ISO 8601 with a zone, e.g. `2027-01-01T00:00:00Z`) the key is refused. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** Priority class of the key's requests when upstreams saturate. */
  priority: z.enum(PRIORITIES).default('normal'),
})

export const ApiKeyListSchema = z.array(ApiKeySchema).superRefine((keys, ctx) => {
  const hashes = new Set<string>()
  const names = new Set<string>()
  keys.forEach((k, i) => {
    if (hashes.has(k.hash)) ctx.addIssue({ code: 'custom', path: [i, 'hash'], message: 'the same key is listed twice' })
    if (names.has(k.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate key name "${k.name}"` })
    hashes.add(k.hash)
    names.add(k.name)
  })
})

/** The file `auth.keysFile` names: `{ keys: [...] }` in YAML or JSON, the same shape as `auth.keys`. */
export const KeysFileSchema = z.strictObject({ keys: ApiKeyListSchema })

export const AuthSchema = z.strictObject({
  /** Client API keys. Empty (and no keysFile): no authentication, every request is tenant `default`. */
  keys: ApiKeyListSchema.default([]),
  /**
   * A YAML/JSON file of more keys (`{ keys: [...] }`), e.g. a mounted Kubernetes Secret. Re-read
   * when it changes, without a restart; a file that fails validation is refused and the keys
   * in force stay. Setting it turns authentication on even while the file lists no key.
   */
  keysFile: z.string().min(1).optional(),
})

export type AuthConfig = z.output<typeof AuthSchema>
export type ApiKeyConfig = z.output<typeof ApiKeySchema>
