/**
 * The running config as `GET /config` shows it: secrets never leave the process. Credentials
 * are referenced by environment variable name in the config (`apiKeyEnv`, `passwordEnv`,
 * `tokenEnv`); what can still carry one is a URL's user-info (`redis://:pw@host`) and a client
 * key's digest, and any key whose name says it is a secret.
 */
const SECRET_KEY = /(password|secret|token|hash|apikey|credential)$/i
export const REDACTED = '[redacted]'

export function redactConfig(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => redactConfig(v))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = redactConfig(v, k)
    return out
  }
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key)) return REDACTED
    return redactUrl(value)
  }
  return value
}

function redactUrl(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(value)) return value
  try {
    const u = new URL(value)
    if (u.username === '' && u.password === '') return value
    u.username = u.username === '' ? '' : REDACTED
    u.password = u.password === '' ? '' : REDACTED
    return u.toString()
  } catch {
    return value.replace(/\/\/[^/]*@/, `//${REDACTED}@`)
  }
}
