/**
 * The building blocks the stack config schemas share (lib/stack-config.ts for region stacks,
 * lib/global-config.ts for a stage's global stack): defined once so a rule cannot drift between them.
 */
import { z } from 'zod'

/** AWS region ids: `us-east-1`, `ap-northeast-1`, `eu-west-1`, `us-gov-west-1`... */
export const AWS_REGION = /^[a-z]{2}(-gov)?-[a-z]+-\d$/

/** A public DNS name such as api.example.com. */
export const dnsName = z.string().regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'a DNS name such as api.example.com')

/** An existing Route 53 hosted zone's id. */
export const hostedZoneId = z.string().regex(/^Z[A-Z0-9]{1,31}$/, 'a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ')

/** Pulumi passes every config value as a string; structured ones are JSON text. */
export function decoded<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => {
    if (typeof v !== 'string') return v
    try { return JSON.parse(v) } catch { return v }
  }, schema)
}
