/**
 * The built-in OpenAI-compatible inference simulator: deterministic answers, configurable
 * latency, and fault injection for failover tests. It is also the "direct" baseline of the
 * benchmarks, so it runs on raw `node:http` with precomputed bodies.
 */

import type { Server as HttpServer } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { SimCore, type SimulatorOptions, type SimulatorStats, resolveOptions } from './core.ts'
import type { VllmEngine } from './engine.ts'
import type { Faults } from './faults.ts'
import { createRequestHandler } from './handler.ts'
import { SimRequest, SimResponse } from './transport.ts'

// node:http through require, not an ESM import: building an ESM namespace of node:http reads its
// lazy WebSocket getters, which loads Node's bundled undici (about 12 MB resident) for nothing.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

export type { Faults } from './faults.ts'
export type { SimulatorOptions, SimulatorStats } from './core.ts'
export type { VllmOptions } from './engine.ts'

export interface Simulator {
  /** `http://HOST:PORT`, no trailing slash. */
  readonly url: string
  readonly port: number
  /** Merges into the current faults; throws a TypeError on an unknown key or a bad value. */
  setFaults(f: Partial<Faults>): void
  clearFaults(): void
  stats(): SimulatorStats
  resetStats(): void
  /** The vLLM-like engine (vLLM mode only), e.g. to read its queue and cache in tests. */
  readonly engine: VllmEngine | null
  /** Closes the listener (new connections are refused) and destroys every open connection. */
  stopAccepting(): Promise<void>
  /** Listens again on the same port. */
  resumeAccepting(): Promise<void>
  close(): Promise<void>
}

type Server = HttpServer<typeof SimRequest, typeof SimResponse>

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

function stopListening(server: Server): Promise<void> {
  if (!server.listening) {
    server.closeAllConnections()
    return Promise.resolve()
  }
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const options = resolveOptions(opts)
  const core = new SimCore(options, opts.faults)
  const server = createServer<typeof SimRequest, typeof SimResponse>(
    { IncomingMessage: SimRequest, ServerResponse: SimResponse, keepAliveTimeout: options.keepAliveTimeoutMs, noDelay: true },
    createRequestHandler(core),
  )
  // A hung response is a deliberate fault; Node must not time it out on the simulator's behalf.
  server.requestTimeout = 0
  await listen(server, options.port, options.host)
  const port = (server.address() as AddressInfo).port
  const url = `http://${urlHost(options.host)}:${port}`
  let closed = false

  return Object.freeze({
    url,
    port,
    setFaults: (f: Partial<Faults>) => core.setFaults(f),
    clearFaults: () => core.clearFaults(),
    stats: () => core.stats(),
    resetStats: () => core.resetStats(),
    engine: core.engine,
    stopAccepting: () => stopListening(server),
    async resumeAccepting(): Promise<void> {
      if (closed) throw new Error('simulator is closed')
      if (!server.listening) await listen(server, port, options.host)
    },
    async close(): Promise<void> {
      closed = true
      core.close()
      await stopListening(server)
    },
  })
}
