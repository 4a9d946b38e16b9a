import { isIP } from 'node:net'
import { z } from 'zod'
import { envVarName } from '../config/primitives.ts'

/**
 * The admin listener: `/metrics`, profiles, member state and operator actions, on a port of its
 * own that is never the public one. Absent `port`: no admin listener (local use), and `/metrics`
 * stays on the main port unless client auth is on.
 */
export const AdminSchema = z
  .strictObject({
    /** Interface to bind: loopback, or the pod's own address (`0.0.0.0` inside a pod network). */
    host: z.string().min(1).default('127.0.0.1'),
    /** TCP port of the admin listener; 0 picks a free one (tests). Absent: no admin listener. */
    port: z.number().int().min(0).max(65535).optional(),
    /** Environment variable holding the admin token, sent as `Authorization: Bearer <token>`. */
    tokenEnv: envVarName.optional(),
  })
  .superRefine((admin, ctx) => {
    if (admin.port !== undefined && admin.tokenEnv === undefined && !isLoopback(admin.host)) {
      ctx.addIssue({ code: 'custom', path: ['tokenEnv'], message: `an admin listener on "${admin.host}" (not loopback) needs tokenEnv` })
    }
  })

export type AdminConfig = z.output<typeof AdminSchema>

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  return isIP(host) === 4 && host.startsWith('127.')
}
