/** Shared test helpers: a real redis-server on a free port, a real HTTP server for replays. */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, request, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { Redis } from 'ioredis'
import { CacheConfigSchema, ResponseCache, type CacheConfigInput, type CacheRequest } from '../../../gateway/src/cache/index.ts'
import { freePort } from '../../../gateway/src/cluster/free-port.ts'
import { eventually } from '../../helpers/eventually.ts'

export { freePort }

export class RedisServer {
  readonly port: number
  #proc: ChildProcess | null = null

  constructor(port: number) {
    this.port = port
  }

  static async start(port?: number): Promise<RedisServer> {
    const s = new RedisServer(port ?? (await freePort()))
    await s.restart()
    return s
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number {
    return this.#proc?.pid ?? -1
  }

  async restart(): Promise<void> {
    this.#proc = spawn('/usr/bin/redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    await eventually(async () => {
      // disconnectTimeout 0: the probe's socket goes at once instead of holding the process for 2 s.
      const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, disconnectTimeout: 0 })
      probe.on('error', () => {})
      try {
        await probe.connect()
        return (await probe.ping()) === 'PONG'
      } finally {
        probe.disconnect()
      }
    }, { what: `redis-server to answer on port ${this.port}`, intervalMs: 30 })
  }

  async stop(): Promise<void> {
    const p = this.#proc
    if (p === null || p.exitCode !== null) return
    this.#proc = null
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve())
      p.kill('SIGKILL')
    })
  }

  pause(): void {
    this.#proc?.kill('SIGSTOP')
  }

  resume(): void {
    this.#proc?.kill('SIGCONT')
  }
}

export const silentLogger = { warn: (): void => {}, info: (): void => {} }

export async function makeCache(input: CacheConfigInput = {}, redisUrl?: string, commandTimeoutMs = 50): Promise<{ cache: ResponseCache; registry: Registry }> {
  const registry = new Registry()
  const config = CacheConfigSchema.parse(input)
  const cache = await ResponseCache.create(config, { url: redisUrl, keyPrefix: 'velox-test:', connectTimeoutMs: 500, commandTimeoutMs }, registry, silentLogger)
  await cache.ready()
  return { cache, registry }
}

export function chatRequest(over: Partial<CacheRequest> & { body?: Record<string, unknown> } = {}): CacheRequest {
  return {
    tenant: 'acme',
    endUser: null,
    endpoint: 'chat.completions',
    model: 'llama-3.1-8b',
    headers: {},
    ...over,
    body: over.body ?? {
      model: 'llama',
      temperature: 0,
      max_tokens: 64,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'What is the capital of France?' },
      ],
    },
  }
}

export function chatJson(content: string, opts: { finish?: string | null; usage?: boolean } = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'llama-3.1-8b',
      choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: opts.finish === undefined ? 'stop' : opts.finish }],
      ...(opts.usage === false ? {} : { usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 } }),
    }),
  )
}

/** An SSE body as a live upstream streams it, one piece per token. */
export function chatSse(pieces: string[], opts: { usage?: boolean; done?: boolean; error?: boolean } = {}): Buffer[] {
  const base = { id: 'chatcmpl-2', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'llama-3.1-8b' }
  const out: string[] = []
  out.push(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`)
  for (const p of pieces) out.push(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })}\n\n`)
  if (opts.error) out.push(`data: ${JSON.stringify({ error: { message: 'upstream died', type: 'server_error' } })}\n\n`)
  out.push(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`)
  if (opts.usage) out.push(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: pieces.length, total_tokens: 9 + pieces.length } })}\n\n`)
  if (opts.done !== false) out.push('data: [DONE]\n\n')
  return out.map((s) => Buffer.from(s))
}

/** Feeds a recorder and waits for its deferred commit. */
export async function record(cache: ResponseCache, plan: ReturnType<ResponseCache['plan']>, status: number, contentType: string, chunks: Buffer[], end: 'end' | 'abort' = 'end'): Promise<boolean> {
  const rec = cache.recorder(plan, status, { 'content-type': contentType })
  if (rec === null) return false
  for (const c of chunks) rec.onData(c)
  if (end === 'end') rec.onEnd()
  else rec.onAbort()
  await new Promise((r) => setImmediate(r))
  await new Promise((r) => setImmediate(r))
  return true
}

export interface ReplayResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** Body pieces as they arrived, to see chunking. */
  pieces: number
}

/** A real HTTP server whose handler is set per test, and a client that reads one response. */
export class ReplayServer {
  readonly #server: Server
  handler: (res: ServerResponse) => void = (res) => res.end()

  private constructor(server: Server) {
    this.#server = server
  }

  static async start(): Promise<ReplayServer> {
    let self: ReplayServer | null = null
    const server = createServer((_req, res) => self!.handler(res))
    self = new ReplayServer(server)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    return self
  }

  async fetch(handler: (res: ServerResponse) => void): Promise<ReplayResult> {
    this.handler = handler
    const port = (this.#server.address() as AddressInfo).port
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET' }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (c: Buffer) => parts.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8'), pieces: parts.length }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise((r) => this.#server.close(r))
  }
}

export function sseDataEvents(body: string): string[] {
  return body
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6))
}
