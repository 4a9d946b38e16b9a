/**
 * Loads the gateway config once at boot: YAML file (optional) -> env overrides -> schema
 * validation with defaults -> deep freeze. Errors name the file and the bad path so an operator
 * can fix them without reading code.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { GatewayConfigSchema, type GatewayConfig } from './schema.ts'

// The YAML parser loads with the first file read: embedded defaults (`npm start`) never need it.
const requireModule = createRequire(import.meta.url)
const parseYaml = (text: string): unknown => (requireModule('yaml') as typeof import('yaml')).parse(text)

export class ConfigError extends Error {
  readonly issues: readonly string[]
  constructor(source: string, issues: readonly string[]) {
    super(`invalid gateway config (${source}):\n  - ${issues.join('\n  - ')}`)
    this.name = 'ConfigError'
    this.issues = issues
  }
}

/**
 * Environment variables that override single keys, applied after the file and before validation.
 * Documented in the README; anything more belongs in the file.
 */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: readonly string[]; type: 'string' | 'int' }> = [
  { env: 'VELOX_HOST', path: ['server', 'host'], type: 'string' },
  { env: 'VELOX_PORT', path: ['server', 'port'], type: 'int' },
  { env: 'VELOX_WORKERS', path: ['server', 'workers'], type: 'int' },
  { env: 'VELOX_LOG_LEVEL', path: ['log', 'level'], type: 'string' },
  { env: 'VELOX_REDIS_URL', path: ['redis', 'url'], type: 'string' },
]

/** Validates a plain object (from YAML, a renderer or a test) and returns the frozen config. */
export function parseConfig(input: unknown, source = 'inline'): GatewayConfig {
  const result = GatewayConfigSchema.safeParse(input ?? {})
  if (!result.success) {
    throw new ConfigError(source, result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`))
  }
  return deepFreeze(result.data)
}

/** Reads the file (if any), applies env overrides and validates. */
export function loadConfig(file: string | null, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let raw: unknown = {}
  const source = file ?? 'embedded defaults'
  if (file) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(file, [`cannot read file: ${(err as Error).message}`])
    }
    try {
      raw = parseYaml(text) ?? {}
    } catch (err) {
      throw new ConfigError(file, [`not valid YAML: ${(err as Error).message}`])
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(file, ['(root): expected a mapping of sections (server, upstreams, ...)'])
    }
  }
  return parseConfig(applyEnvOverrides(raw as Record<string, unknown>, env, source), source)
}

export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, source: string): Record<string, unknown> {
  const out = structuredClone(raw)
  for (const o of ENV_OVERRIDES) {
    const value = env[o.env]
    if (value === undefined || value === '') continue
    let parsed: string | number = value
    if (o.type === 'int') {
      if (!/^\d+$/.test(value)) throw new ConfigError(source, [`${o.env}: expected a whole number, got "${value}"`])
      parsed = Number(value)
    }
    let node = out
    for (const key of o.path.slice(0, -1)) {
      const next = node[key]
      if (typeof next !== 'object' || next === null) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    node[o.path[o.path.length - 1]!] = parsed
  }
  return out
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(root)'
  let s = ''
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`
  return s
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
