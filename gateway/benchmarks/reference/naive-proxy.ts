/**
 * The baseline the gateway must beat: the proxy most teams would write first with the same
 * libraries (fastify + undici) and no tuning. The JSON body is parsed and re-serialised, the call
 * goes through `undici.request`, and the upstream body is piped back as a stream.
 *
 *   npx node gateway/benchmarks/reference/naive-proxy.ts --upstream http://127.0.0.1:9000 [--port 0]
 *
 * Prints `{"event":"listening","url":"http://127.0.0.1:PORT"}` when ready; exits on SIGTERM.
 */
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import { Agent, request } from 'undici'

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    upstream: { type: 'string' },
  },
})
if (!values.upstream) {
  console.error('usage: naive-proxy.ts --upstream URL [--host H] [--port P]')
  process.exit(2)
}
const upstream = values.upstream.replace(/\/$/, '')
const dispatcher = new Agent({ connections: 64 })

// Connection-level headers describe one hop, not the message; copying them breaks framing.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer'])

const app = Fastify({ logger: false })

app.get('/readyz', async () => ({ status: 'ready' }))

app.post('/v1/*', async (req, reply) => {
  const res = await request(`${upstream}${req.url}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(req.body),
    dispatcher,
  })
  reply.code(res.statusCode)
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) reply.header(name, value)
  }
  return reply.send(res.body)
})

const url = await app.listen({ host: values.host, port: Number(values.port) })
console.log(JSON.stringify({ event: 'listening', url }))

process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0))
})
