/**
 * Reads regions/Pulumi.<stack>.yaml the way the Pulumi CLI hands it to the program: a flat map of
 * `namespace:key` to string, structured values JSON-encoded.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const REGIONS_DIR = join(REPO_ROOT, 'regions')

function stackFiles(dir: string): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort()
}

/** Every regional stack (`<stage>-<region>`) that has a config file in regions/, sorted. */
export function shippedStacks(dir = REGIONS_DIR): string[] {
  return stackFiles(dir).filter((s) => !s.endsWith('-global'))
}

/** Every global stack (`<stage>-global`) that has a config file in regions/, sorted. */
export function shippedGlobalStacks(dir = REGIONS_DIR): string[] {
  return stackFiles(dir).filter((s) => s.endsWith('-global'))
}

export function stackFile(stack: string, dir = REGIONS_DIR): string {
  return join(dir, `Pulumi.${stack}.yaml`)
}

/** Values Pulumi would pass for the stack: strings stay strings, the rest is JSON text. */
export function readStackConfig(stack: string, dir = REGIONS_DIR): Record<string, string> {
  const doc = parse(readFileSync(stackFile(stack, dir), 'utf8')) as { config?: Record<string, unknown> } | null
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(doc?.config ?? {})) {
    if (typeof value === 'object' && value !== null && 'secure' in value) continue
    out[key] = typeof value === 'string' ? value : JSON.stringify(value)
  }
  return out
}
