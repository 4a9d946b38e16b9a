/**
 * The building blocks every piece of the config schema shares (config/schema.ts and each folder's
 * config.ts), and the Pulumi stack config reuses: defined once so a rule cannot drift between them.
 */
import { z } from 'zod'

export const positiveInt = z.number().int().positive()
export const nonNegativeInt = z.number().int().nonnegative()
/** A duration in milliseconds; 0 disables the timer where the key's docs say so. */
export const millis = nonNegativeInt

/** Names that label metrics and logs (upstreams, keys, tenants) stay short and plain. */
export const PLAIN_NAME = /^[A-Za-z0-9_.-]{1,64}$/
export const upstreamName = z.string().regex(PLAIN_NAME, 'letters, digits, "_", "." or "-", at most 64')

/** The name of an environment variable holding a secret (never the secret itself). */
export const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
