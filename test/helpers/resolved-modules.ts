/**
 * In-process counterpart of loaded-modules-hook.ts: from the call on, records the URL of every
 * module this process resolves (ESM imports and CommonJS requires alike, through
 * module.registerHooks). Call it before importing what the test checks.
 */
import { registerHooks } from 'node:module'

export function recordResolvedModules(): readonly string[] {
  const resolved: string[] = []
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const r = nextResolve(specifier, context)
      resolved.push(r.url)
      return r
    },
  })
  return resolved
}
