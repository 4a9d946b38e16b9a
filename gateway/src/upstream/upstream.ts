/**
 * One upstream origin: its connection pool (built once at boot), the credential the gateway
 * injects, and the request-path prefix. The pool only chooses connections; routing decisions live
 * in gateway/src/routing. A plain-HTTP upstream without pipelining gets the gateway's own HTTP/1.1
 * pool (http1-pool.ts); TLS, HTTP/2 and pipelining go through undici's.
 */
import { createRequire } from 'node:module'
import type { Dispatcher, Pool } from 'undici'
import type { UpstreamConfig } from '../config/schema.ts'
import { providerFor, type Provider } from '../providers/index.ts'
import { AdmissionQueue, FULL_SHARES } from './admission.ts'
import { Http1Pool } from './http1-pool.ts'

// undici (its root loads fetch, WebSocket, HTTP/2 and TLS: several MB resident) is required by
// the first upstream that needs its pool; plain-HTTP upstreams never load it.
const requireModule = createRequire(import.meta.url)

/** A bodiless request's answer, whichever pool carried it. */
export interface UpstreamAnswer {
  readonly statusCode: number
  readonly body: { text(): Promise<string>; json(): Promise<unknown>; dump(): Promise<void> }
}

/** Marks a request one gateway forwarded to another (a peer region). */
export const HOP_HEADER = 'x-velox-hop'

export interface PoolStatsSnapshot {
  connected: number
  free: number
  pending: number
  running: number
}

/** An undici client as the pool stamps it: `ttl` is when its connection was made (Date.now() ms). */
interface AgedClient {
  ttl?: number
  readonly closed?: boolean
  readonly destroyed?: boolean
}

export class Upstream {
  readonly name: string
  readonly config: UpstreamConfig
  /** `http(s)://host:port`, what the pool connects to. */
  readonly origin: string
  /** Path prefix from the configured URL, without a trailing slash (`''` or `/openai`). */
  readonly basePath: string
  /** undici's pool, or the gateway's own for plain HTTP (`pool.client: auto`). */
  readonly pool: Pool | Http1Pool
  /** How calls are sent to this upstream's kind and its answers read back. */
  readonly provider: Provider
  /** Bounds how many requests are in the pool and how many wait for it, and for how long. */
  readonly admission: AdmissionQueue
  /**
   * Request headers sent on every call, as undici's flat `[name, value, ...]` array, built once:
   * the injected credential. Client headers are never copied wholesale, so a client's own
   * `Authorization` can never reach the upstream.
   */
  readonly baseHeaders: readonly string[]
  /** `baseHeaders` plus the JSON content type: the whole header list of a typical forwarded POST. */
  readonly postHeaders: readonly string[]
  /** Connections opened by the last warm-up (0 until warmed). */
  warmed: number
  /** Recent peak of concurrent requests (decaying); kept by the pool sizer. */
  peakConcurrency: number
  /** Path of the cheap GET used to open connections (the active health path). */
  healthPath: string
  private opening: boolean
  /**
   * When each open connection was made (Date.now() ms), while `pool.maxConnectionAgeMs` is set;
   * null when connections never age out. See `dispatch`.
   */
  #connectedAt: Map<AgedClient, number> | null
  #nextAgeCheck: number
  readonly #maxAgeMs: number

  /**
   * `origin`: where to connect when it is not the URL's own host, as for one DNS-discovered
   * address of a headless Service (`http://10.0.1.7:8000`). The URL's host is still sent as the
   * Host header and TLS servername. `queueShares`: the share of `pool.maxPending` each priority
   * class may fill (index: PRIORITY_CLASS).
   */
  constructor(config: UpstreamConfig, env: NodeJS.ProcessEnv = process.env, origin: string | null = null, queueShares: readonly number[] = FULL_SHARES) {
    const url = new URL(config.url)
    const hostOverride = origin !== null && origin !== url.origin
    this.name = config.name
    this.config = config
    this.origin = hostOverride ? origin : url.origin
    this.basePath = url.pathname.replace(/\/+$/, '')
    const apiKey = config.apiKeyEnv ? env[config.apiKeyEnv] : undefined
    if (config.apiKeyEnv && !apiKey) {
      throw new Error(`upstream "${config.name}": environment variable ${config.apiKeyEnv} (apiKeyEnv) is empty or unset`)
    }
    this.provider = providerFor(config.kind, { apiVersion: config.apiVersion, deployments: config.deployments, region: config.region, name: config.name, host: url.host, basePath: this.basePath, apiKey, env })
    // The credential header is the provider's: Bearer, Azure's api-key, Anthropic's x-api-key.
    const headers: string[] = this.provider.headers(apiKey)
    if (config.peer) headers.push(HOP_HEADER, '1')
    // A discovered member is dialled by address but must still present the service's hostname.
    if (hostOverride) headers.push('host', url.host)
    this.baseHeaders = Object.freeze(headers)
    this.postHeaders = Object.freeze([...headers, 'content-type', 'application/json'])
    const { pool, timeouts } = config
    this.#maxAgeMs = pool.maxConnectionAgeMs
    this.#nextAgeCheck = 0
    this.#connectedAt = null
    if (pool.client === 'auto' && this.origin.startsWith('http:') && pool.pipelining === 1) {
      this.pool = new Http1Pool(this.origin, {
        connections: pool.connections,
        keepAliveTimeoutMs: pool.keepAliveTimeoutMs,
        maxConnectionAgeMs: pool.maxConnectionAgeMs,
        connectTimeoutMs: timeouts.connectMs,
        headersTimeoutMs: timeouts.firstByteMs,
        bodyTimeoutMs: timeouts.idleMs,
      }, hostOverride ? url.host : null)
    } else this.pool = this.#undiciPool(config, hostOverride, url)
    this.admission = new AdmissionQueue(pool.connections * pool.pipelining, pool.maxPending, pool.queueTimeoutMs, queueShares)
    this.warmed = 0
    this.healthPath = '/health'
    this.opening = false
    this.peakConcurrency = 0
  }

  #undiciPool(config: UpstreamConfig, hostOverride: boolean, url: URL): Pool {
    const { pool, timeouts } = config
    const { Pool: UndiciPool } = requireModule('undici') as typeof import('undici')
    const undici = new UndiciPool(this.origin, {
      connections: pool.connections,
      pipelining: pool.pipelining,
      keepAliveTimeout: pool.keepAliveTimeoutMs,
      // Never trust a longer keep-alive hint from the upstream than our own ceiling.
      keepAliveMaxTimeout: pool.keepAliveTimeoutMs,
      clientTtl: pool.maxConnectionAgeMs > 0 ? pool.maxConnectionAgeMs : null,
      connectTimeout: timeouts.connectMs,
      headersTimeout: timeouts.firstByteMs,
      bodyTimeout: timeouts.idleMs,
      allowH2: pool.http2,
      // TLS servername for discovered members (dialled by IP).
      ...(hostOverride && url.protocol === 'https:' ? { connect: { servername: url.hostname } } : {}),
    })
    if (pool.maxConnectionAgeMs > 0) {
      const connectedAt = new Map<AgedClient, number>()
      this.#connectedAt = connectedAt
      // undici's pool stamps every connection it makes (`ttl`) and, on every dispatch, scans its
      // connections calling Date.now() for each stamped one (half the pool's CPU and garbage at 64
      // connections). The stamp is taken off here and put back once the connection is older than
      // the limit, so the pool retires it exactly as it would have, without the per-request scan.
      undici.on('connect', (_origin, targets) => {
        const client = targets[targets.length - 1] as AgedClient
        if (typeof client.ttl !== 'number' || client.ttl === 0) return
        connectedAt.set(client, client.ttl)
        client.ttl = 0
      })
    }
    return undici
  }

  /** A bodiless request (GET) with this upstream's base headers, its body read whole: probes, model lists, warm-up. */
  request(options: { path: string; method: string; signal: AbortSignal }): Promise<UpstreamAnswer> {
    const pool = this.pool
    const request = { path: options.path, method: options.method, headers: this.baseHeaders as string[], signal: options.signal }
    return pool instanceof Http1Pool ? pool.request(request) : (pool.request(request) as Promise<UpstreamAnswer>)
  }

  /**
   * Opens up to `pool.warm` connections by sending that many concurrent lightweight requests, so
   * the first real requests never wait on TCP/TLS handshakes. Any HTTP answer (even 404) proves
   * the connection; only transport errors count as failures. Resolves to the connections opened.
   */
  async warm(path = '/health', timeoutMs = 2_000): Promise<number> {
    this.healthPath = path
    // Credentials a provider signs with are loaded before the upstream counts as warm.
    await this.provider.ready?.()
    this.warmed = await this.open(this.config.pool.warm, timeoutMs)
    return this.warmed
  }

  /**
   * Sends `n` concurrent lightweight requests, so the pool holds at least `n` connections beyond
   * those busy (idle ones take requests first; the rest are opened). Any HTTP answer proves a
   * connection; only transport errors count as failures. Calls are not stacked: while one runs,
   * another returns 0.
   */
  async open(n: number, timeoutMs = 2_000): Promise<number> {
    if (n <= 0 || this.opening) return 0
    this.opening = true
    try {
      const signal = AbortSignal.timeout(timeoutMs)
      const results = await Promise.allSettled(
        Array.from({ length: n }, () =>
          this.request({ path: this.basePath + this.healthPath, method: 'GET', signal }).then((r) => r.body.dump()),
        ),
      )
      return results.filter((r) => r.status === 'fulfilled').length
    } finally {
      this.opening = false
    }
  }

  /** Hands a request to the pool (undici's: the connection-age check runs here, at most a few times a second). */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#connectedAt !== null) {
      const now = Date.now()
      if (now >= this.#nextAgeCheck) this.#retireAged(now)
    }
    return this.pool.dispatch(options, handler)
  }

  /**
   * A POST with `postHeaders` and, after them, `extra` (the forwarded client headers, per
   * request). The gateway's own pool encodes `postHeaders` once; undici's gets the lists joined.
   */
  post(path: string, extra: readonly string[] | null, body: Buffer | Uint8Array | string, handler: Dispatcher.DispatchHandler): boolean {
    const pool = this.pool
    if (pool instanceof Http1Pool) return pool.dispatch({ path, method: 'POST', headers: this.postHeaders as string[], body }, handler, extra)
    return this.dispatch({ path, method: 'POST', headers: extra === null ? (this.postHeaders as string[]) : this.headersWith(extra), body }, handler)
  }

  /** Gives the pool back the stamp of every connection past `maxConnectionAgeMs`: its next dispatch retires them. */
  #retireAged(now: number): void {
    this.#nextAgeCheck = now + Math.min(1_000, Math.max(1, Math.floor(this.#maxAgeMs / 4)))
    for (const [client, at] of this.#connectedAt!) {
      if (client.closed === true || client.destroyed === true) this.#connectedAt!.delete(client)
      else if (now - at > this.#maxAgeMs) {
        this.#connectedAt!.delete(client)
        client.ttl = at
      }
    }
  }

  /** Open connections whose age is being watched (tests). */
  get agedConnections(): number {
    if (this.pool instanceof Http1Pool) return this.#maxAgeMs > 0 ? this.pool.openConnections : 0
    return this.#connectedAt?.size ?? 0
  }

  /** The POST headers plus a few client headers that are safe to pass on (request ids, API betas). */
  headersWith(extra: readonly string[]): string[] {
    return this.postHeaders.concat(extra)
  }

  /** `pending`: requests waiting for a connection, in the admission queue or (briefly) in undici's. */
  stats(): PoolStatsSnapshot {
    const s = this.pool.stats
    return { connected: s.connected, free: s.free, pending: s.pending + this.admission.waiting, running: s.running }
  }

  close(): Promise<void> {
    return this.pool.close()
  }

  destroy(): Promise<void> {
    return this.pool.destroy()
  }
}
