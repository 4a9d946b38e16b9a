/** Test helpers: a gateway on port 0 in front of real simulator processes in this process. */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { parseConfig } from '../../gateway/src/config/load.ts'
import type { GatewayConfigInput } from '../../gateway/src/config/schema.ts'
import { buildServer } from '../../gateway/src/server.ts'
import { createLogger } from '../../gateway/src/telemetry/logger.ts'

export interface TestGateway {
  app: FastifyInstance
  url: string
  close(): Promise<void>
}

/** Builds, listens on 127.0.0.1:0 and waits for warm-up. Logs (to `logTo`) stay silent unless the config's log level or VELOX_TEST_LOG says otherwise. */
export async function startGateway(input: GatewayConfigInput, env: NodeJS.ProcessEnv = process.env, logTo: NodeJS.WritableStream = process.stderr): Promise<TestGateway> {
  const config = parseConfig({ log: { level: 'silent' }, ...input, server: { host: '127.0.0.1', port: 0, ...input.server } })
  const logger = createLogger(process.env.VELOX_TEST_LOG ?? config.log.level, logTo)
  const app = await buildServer(config, { logger, env, defaultMetrics: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await app.velox.warmed
  const { port } = app.server.address() as AddressInfo
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      app.server.closeAllConnections()
      await app.close()
    },
  }
}

/** A raw upstream for behaviours the simulator does not model; records what it received. */
export async function startRawUpstream(handler: http.RequestListener): Promise<{ url: string; server: http.Server; close(): Promise<void> }> {
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export function chatBody(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'velox-sim-1', messages: [{ role: 'user', content: 'hello there' }], ...extra })
}

export async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
}

/** Reads an SSE response event by event, with the time each arrived. */
export async function readEvents(res: Response): Promise<{ events: string[]; times: number[] }> {
  const events: string[] = []
  const times: number[] = []
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true })
    let at: number
    while ((at = buffer.indexOf('\n\n')) !== -1) {
      events.push(buffer.slice(0, at))
      times.push(performance.now())
      buffer = buffer.slice(at + 2)
    }
  }
  if (buffer.trim() !== '') events.push(buffer)
  return { events, times }
}
