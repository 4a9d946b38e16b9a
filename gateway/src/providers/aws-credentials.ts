/**
 * AWS credentials for SigV4-signed upstreams (`kind: bedrock`), from the standard provider chain
 * of the AWS SDK (`@aws-sdk/credential-provider-node`): environment variables, SSO, web identity
 * (EKS IRSA), the shared config and credentials files (profiles, assumed roles,
 * credential_process), container credentials (EKS Pod Identity, ECS) and instance metadata.
 *
 * Signing happens on the request path and is synchronous, so credentials are held here, loaded
 * once before the upstream counts as warm and refreshed in the background ahead of their
 * expiry; a request never waits on the chain. The chain is shared by every upstream of the
 * process (one IMDS or STS conversation, not one per member).
 */
import { GatewayError } from '../errors.ts'

export interface AwsCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly sessionToken?: string | undefined
  readonly expiration?: Date | undefined
}

export type CredentialSource = () => Promise<AwsCredentials>

/** Refresh this long before the credentials expire (the SDK treats the last 5 minutes as expired). */
export const REFRESH_AHEAD_MS = 5 * 60_000
/** After a failed load, the next request may start another, at most this often. */
const RETRY_AFTER_FAILURE_MS = 1_000

export class CachedCredentials {
  readonly #source: CredentialSource
  readonly #now: () => number
  #current: AwsCredentials | null
  #loading: Promise<void> | null
  #lastError: string | null
  #failedAt: number

  constructor(source: CredentialSource, now: () => number = Date.now) {
    this.#source = source
    this.#now = now
    this.#current = null
    this.#loading = null
    this.#lastError = null
    this.#failedAt = -Infinity
  }

  /** Loads the credentials if none are held yet; resolves when that load ends, either way. */
  ready(): Promise<void> {
    if (this.#current !== null && !this.#stale(this.#now())) return Promise.resolve()
    return this.#load()
  }

  /** Why the last load failed, or null. */
  get lastError(): string | null {
    return this.#lastError
  }

  /**
   * The credentials to sign with now. Starts a background refresh when they are close to
   * expiry; throws GW_ERR_UPSTREAM_CREDENTIALS when there are none that are still valid.
   */
  current(): AwsCredentials {
    const now = this.#now()
    const held = this.#current
    if (held !== null && this.#stale(now) && this.#loading === null) void this.#load()
    if (held !== null && (held.expiration === undefined || held.expiration.getTime() > now)) return held
    if (this.#loading === null && now - this.#failedAt >= RETRY_AFTER_FAILURE_MS) void this.#load()
    throw new GatewayError('GW_ERR_UPSTREAM_CREDENTIALS', this.#lastError ?? (held === null ? 'still loading from the AWS provider chain' : 'they expired'), { retryAfter: 1 })
  }

  #stale(now: number): boolean {
    const exp = this.#current?.expiration
    return exp !== undefined && exp.getTime() - now < REFRESH_AHEAD_MS
  }

  #load(): Promise<void> {
    if (this.#loading !== null) return this.#loading
    const loading = this.#source()
      .then((c) => {
        if (typeof c?.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') throw new Error('the provider returned no access key')
        this.#current = c
        this.#lastError = null
      })
      .catch((err: unknown) => {
        this.#failedAt = this.#now()
        this.#lastError = err instanceof Error ? err.message : String(err)
      })
      .finally(() => {
        this.#loading = null
      })
    this.#loading = loading
    return loading
  }
}

let sharedChain: CachedCredentials | null = null

/**
 * The process's credentials from the SDK's default chain. The SDK is loaded on first use, so a
 * gateway with no bedrock upstream never loads it.
 */
function defaultChain(): CachedCredentials {
  if (sharedChain === null) {
    let provider: CredentialSource | null = null
    sharedChain = new CachedCredentials(async () => {
      if (provider === null) {
        const { defaultProvider } = await import('@aws-sdk/credential-provider-node')
        provider = defaultProvider()
      }
      // The SDK's provider memoizes and refreshes itself; ask it again only when ours go stale.
      return provider()
    })
  }
  return sharedChain
}

/**
 * Credentials for an upstream: the static pair in `env` (`AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) when it has one, else the default chain.
 */
export function awsCredentials(env: NodeJS.ProcessEnv): CachedCredentials {
  const id = env.AWS_ACCESS_KEY_ID
  const secret = env.AWS_SECRET_ACCESS_KEY
  if (id && secret && env !== process.env) {
    const fixed: AwsCredentials = { accessKeyId: id, secretAccessKey: secret, sessionToken: env.AWS_SESSION_TOKEN || undefined }
    return new CachedCredentials(() => Promise.resolve(fixed))
  }
  return defaultChain()
}
