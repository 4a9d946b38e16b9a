import { z } from 'zod'
import { PLAIN_NAME } from '../config/primitives.ts'

/** `sha256:` + 64 hex digits: the digest of an API key; keys themselves are never stored. */
export const KEY_HASH = /^sha256:[0-9a-f]{64}$/

export const ApiKeySchema = z.strictObject({
  /** Label for logs and metrics (the key itself is never logged). */
  name: z.string().regex(PLAIN_NAME),
  /** `sha256:<hex>` of the key; make one with `node gateway/src/auth/hash-key.ts`. */
  hash: z.string().regex(KEY_HASH, 'expected sha256:<64 lowercase hex digits>'),
  /** Tenant the key belongs to: the scope of cached answers and limits. */
  tenant: z.string().regex(PLAIN_NAME),
  /** Public model names this key may use; `"*"` for all. */
  models: z.array(z.string().min(1)).min(1).default(['*']),
})

export const AuthSchema = z
  .strictObject({
    /** Client API keys. Empty: no authentication, every request belongs to tenant `default`. */
    keys: z.array(ApiKeySchema).default([]),
  })
  .superRefine((auth, ctx) => {
    const hashes = new Set<string>()
    auth.keys.forEach((k, i) => {
      if (hashes.has(k.hash)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'hash'], message: 'the same key is listed twice' })
      hashes.add(k.hash)
    })
  })

export type AuthConfig = z.output<typeof AuthSchema>
