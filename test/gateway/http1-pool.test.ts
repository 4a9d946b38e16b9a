/**
 * The gateway's own HTTP/1.1 upstream client (upstream/http1-pool.ts) against a raw TCP server
 * that answers with scripted bytes: framing (Content-Length, chunked, until close, interim and
 * bodiless answers) split at random points, refusals of malformed framing, keep-alive reuse, and
 * the failure codes undici would raise (so failover classifies them the same).
 */
import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { seededRandom } from '../../gateway/src/routing/rng.ts'
import { endFollows, Http1Pool, type Http1PoolOptions } from '../../gateway/src/upstream/http1-pool.ts'

interface Received {
  head: string
  body: Buffer
}

/** Answers each request with the next script entry: the response bytes, in the pieces given. */
type Script = (req: Received, socket: Socket) => Promise<void> | void

class RawServer {
  readonly server: Server
  connections = 0
  received: Received[] = []
  script: Script = () => undefined
  url = ''

  constructor() {
    this.server = createServer((socket) => {
      this.connections++
      socket.setNoDelay(true)
      let buffered = Buffer.alloc(0)
      let busy = false
      socket.on('error', () => undefined)
      socket.on('data', async (data) => {
        buffered = Buffer.concat([buffered, data])
        if (busy) return
        busy = true
        for (;;) {
          const end = buffered.indexOf('\r\n\r\n')
          if (end === -1) break
          const head = buffered.subarray(0, end).toString('latin1')
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0)
          if (buffered.length < end + 4 + length) break
          const req = { head, body: Buffer.from(buffered.subarray(end + 4, end + 4 + length)) }
          buffered = buffered.subarray(end + 4 + length)
          this.received.push(req)
          await this.script(req, socket)
        }
        busy = false
      })
    })
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    const address = this.server.address() as { port: number }
    this.url = `http://127.0.0.1:${address.port}`
  }
}

async function writePieces(socket: Socket, bytes: Buffer, cuts: number[]): Promise<void> {
  let at = 0
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    if (cut <= at) continue
    await new Promise<void>((resolve) => socket.write(bytes.subarray(at, cut), () => resolve()))
    await new Promise((resolve) => setImmediate(resolve))
    at = cut
  }
}

interface Outcome {
  status: number
  headers: Record<string, string | string[]>
  body: Buffer
  chunks: number
  error: (Error & { code?: string }) | null
}

class Collector implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | null = null
  status = 0
  headers: Record<string, string | string[]> = {}
  chunks: Buffer[] = []
  onChunk: ((controller: Dispatcher.DispatchController, chunk: Buffer) => void) | null = null
  readonly done: Promise<Outcome>
  #resolve!: (o: Outcome) => void
  calls: string[] = []

  constructor() {
    this.done = new Promise((resolve) => (this.#resolve = resolve))
  }
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.calls.push('start')
    this.controller = controller
  }
  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[]>): void {
    this.calls.push('headers')
    this.status = status
    this.headers = headers
  }
  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk))
    this.onChunk?.(c, chunk)
  }
  onResponseEnd(): void {
    this.calls.push('end')
    this.#resolve({ status: this.status, headers: this.headers, body: Buffer.concat(this.chunks), chunks: this.chunks.length, error: null })
  }
  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    this.calls.push('error')
    this.#resolve({ status: this.status, headers: this.headers, body: Buffer.concat(this.chunks), chunks: this.chunks.length, error })
  }
}

const OPTIONS: Http1PoolOptions = { connections: 4, keepAliveTimeoutMs: 4_000, maxConnectionAgeMs: 0, connectTimeoutMs: 2_000, headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000 }

function send(pool: Http1Pool, body: string | null = '{"a":1}', headers: string[] = ['content-type', 'application/json'], method = 'POST'): Collector {
  const handler = new Collector()
  pool.dispatch({ path: '/v1/chat/completions', method: method as Dispatcher.HttpMethod, headers, body: body === null ? null : Buffer.from(body) }, handler)
  return handler
}

function chunked(body: Buffer, sizes: number[], extension: boolean, trailer: boolean): Buffer {
  const parts: Buffer[] = []
  let at = 0
  let i = 0
  while (at < body.length) {
    const size = Math.min(sizes[i++ % sizes.length]!, body.length - at)
    parts.push(Buffer.from(`${size.toString(16)}${extension && i % 2 === 0 ? ';name=value' : ''}\r\n`), body.subarray(at, at + size), Buffer.from('\r\n'))
    at += size
  }
  parts.push(Buffer.from(trailer ? '0\r\nx-trailer: 1\r\n\r\n' : '0\r\n\r\n'))
  return Buffer.concat(parts)
}

const server = new RawServer()
before(() => server.start())
after(() => new Promise<void>((resolve) => server.server.close(() => resolve())))

test('the request goes out as HTTP/1.1 with its headers, the host, keep-alive and its length; a large body after its head', async () => {
  const pool = new Http1Pool(server.url, OPTIONS)
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  server.received = []
  const out = await send(pool, '{"model":"m"}', ['authorization', 'Bearer k', 'x-request-id', 'r1']).done
  assert.equal(out.error, null)
  assert.equal(out.body.toString(), 'ok')
  const req = server.received[0]!
  assert.equal(req.head, `POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer k\r\nx-request-id: r1\r\nhost: ${new URL(server.url).host}\r\nconnection: keep-alive\r\ncontent-length: 13`)
  assert.equal(req.body.toString(), '{"model":"m"}')
  const large = 'x'.repeat(300_000)
  await send(pool, large, ['x-latin1', 'caf\u00e9']).done
  const big = server.received[1]!
  assert.match(big.head, /\r\nx-latin1: caf\u00e9\r\n/)
  assert.match(big.head, /\r\ncontent-length: 300000$/)
  assert.equal(big.body.toString(), large)
  await send(pool, '', []).done
  assert.match(server.received[2]!.head, /\r\ncontent-length: 0$/)
  await pool.destroy()
})

test('a host header given by the caller replaces the origin (a discovered member dialled by address)', async () => {
  const pool = new Http1Pool(server.url, OPTIONS, 'vllm.svc:8000')
  server.script = (_req, socket) => void socket.write('HTTP/1.1 204 No Content\r\n\r\n')
  server.received = []
  await send(pool, null, []).done
  assert.match(server.received[0]!.head, /\r\nhost: vllm\.svc:8000\r\n/)
  await pool.destroy()
})

test('a frozen header list is encoded once and reused; per-request headers go after it, checked every time', async () => {
  const pool = new Http1Pool(server.url, OPTIONS)
  server.script = (_req, socket) => void socket.write('HTTP/1.1 204 No Content\r\n\r\n')
  server.received = []
  const fixed = Object.freeze(['authorization', 'Bearer k', 'content-type', 'application/json'])
  const host = new URL(server.url).host
  for (const id of ['r1', 'r2']) {
    const handler = new Collector()
    pool.dispatch({ path: '/v1/chat/completions', method: 'POST', headers: fixed as string[], body: Buffer.from('{}') }, handler, ['x-request-id', id])
    assert.equal((await handler.done).error, null)
  }
  const heads = server.received.map((r) => r.head)
  assert.deepEqual(heads, ['r1', 'r2'].map((id) => `POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\nx-request-id: ${id}\r\nhost: ${host}\r\nconnection: keep-alive\r\ncontent-length: 2`))
  // A Host among the per-request headers replaces the origin's, as one in the fixed list does.
  const named = new Collector()
  pool.dispatch({ path: '/v1/models', method: 'GET', headers: fixed as string[] }, named, ['host', 'vllm.svc:8000'])
  await named.done
  assert.match(server.received[2]!.head, /\r\nhost: vllm\.svc:8000\r\nconnection: keep-alive$/)
  assert.equal(server.received[2]!.head.split('host:').length, 2, 'one Host line')
  // Per-request headers are checked on every request, whatever the fixed list's encoding.
  const injected = new Collector()
  pool.dispatch({ path: '/v1/chat/completions', method: 'POST', headers: fixed as string[], body: Buffer.from('{}') }, injected, ['x-request-id', 'r3\r\nx-b: smuggled'])
  assert.equal((await injected.done).error?.code, 'UND_ERR_INVALID_ARG')
  // A frozen list that cannot be written is refused on every request, not only the first.
  const bad = Object.freeze(['x-a', 'v\r\nx-b: smuggled'])
  for (let i = 0; i < 2; i++) {
    const handler = new Collector()
    pool.dispatch({ path: '/v1/models', method: 'GET', headers: bad as string[] }, handler)
    assert.equal((await handler.done).error?.code, 'UND_ERR_INVALID_ARG')
  }
  assert.equal(server.received.length, 3)
  await pool.destroy()
})

test('fuzzed framing: Content-Length, chunked (extensions, trailers) and until-close bodies split anywhere arrive whole', async () => {
  const random = seededRandom(15) // a failing case replays from its seed
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 2 })
  for (let round = 0; round < 150; round++) {
    const size = Math.floor(random() ** 3 * 200_000)
    const body = Buffer.alloc(size)
    for (let i = 0; i < size; i++) body[i] = Math.floor(random() * 256)
    const kind = round % 3
    const sizes = Array.from({ length: 4 }, () => 1 + Math.floor(random() * 5_000))
    const interim = random() < 0.2 ? 'HTTP/1.1 100 Continue\r\n\r\n' : ''
    const head =
      kind === 0 ? `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`
      : kind === 1 ? 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n'
      : 'HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n'
    const bytes = Buffer.concat([Buffer.from(interim + head), kind === 1 ? chunked(body, sizes, random() < 0.5, random() < 0.5) : body])
    const cuts = Array.from({ length: Math.floor(random() * 6) }, () => Math.floor(random() * bytes.length))
    server.script = async (_req, socket) => {
      await writePieces(socket, bytes, cuts)
      if (kind === 2) socket.end()
    }
    const out = await send(pool).done
    assert.equal(out.error, null, `round ${round}: ${out.error?.message}`)
    assert.equal(out.status, 200)
    assert.ok(out.body.equals(body), `round ${round} (kind ${kind}, ${size} bytes, cuts ${cuts.join(',')}): the body differs`)
  }
  await pool.destroy()
})

test('the chunks one read brings reach the handler as one, before the end (marked ending when the end is in that read); a later read is a chunk of its own', async () => {
  const pool = new Http1Pool(server.url, OPTIONS)
  const events = ['data: {"n":1}\n\n', 'data: {"n":2,"usage":{}}\n\n', 'data: [DONE]\n\n']
  const frame = (text: string): string => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
  server.script = async (_req, socket) => {
    // The head with the first event, then the stream's last token, its usage event, [DONE] and
    // the terminating chunk together, as a server's last flush sends them.
    await writePieces(socket, Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n${frame(events[0]!)}`), [])
    await new Promise((resolve) => setTimeout(resolve, 20))
    await writePieces(socket, Buffer.from(`${frame(events[0]!)}${frame(events[1]!)}${frame(events[2]!)}0\r\n\r\n`), [])
  }
  const handler = send(pool)
  const order: string[] = []
  // The second read holds the end too: its chunk is marked `ending` (onResponseEnd follows at once).
  handler.onChunk = (c) => order.push(`${handler.calls.includes('end') ? 'after end' : 'chunk'}${endFollows(c) ? ', ending' : ''}`)
  const out = await handler.done
  assert.equal(out.error, null)
  assert.deepEqual(out.chunks, 2, 'one chunk per read')
  assert.equal(handler.chunks[0]!.toString(), events[0])
  assert.equal(handler.chunks[1]!.toString(), events.join(''))
  assert.deepEqual(order, ['chunk', 'chunk, ending'])
  // A framing error after good chunks of the same read: the good ones still arrive, then the error.
  server.script = async (_req, socket) => {
    await writePieces(socket, Buffer.from(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${frame(events[0]!)}${frame(events[1]!)}zz\r\n`), [])
  }
  const failed = send(pool)
  const bad = await failed.done
  assert.equal(bad.error?.code, 'HPE_INVALID')
  assert.equal(bad.body.toString(), events[0]! + events[1]!)
  assert.deepEqual(failed.calls.slice(-1), ['error'])
  await pool.destroy()
})

test('keep-alive: one connection serves requests in turn; Connection: close and HTTP/1.0 are not reused', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 1 })
  const before = server.connections
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na')
  for (let i = 0; i < 5; i++) assert.equal((await send(pool).done).body.toString(), 'a')
  assert.equal(server.connections - before, 1)
  server.script = (_req, socket) => void socket.end('HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\nb')
  assert.equal((await send(pool).done).body.toString(), 'b')
  server.script = (_req, socket) => void socket.end('HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nc')
  assert.equal((await send(pool).done).body.toString(), 'c')
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nd')
  assert.equal((await send(pool).done).body.toString(), 'd')
  assert.equal(server.connections - before, 3)
  assert.equal(pool.stats.connected, 1)
  assert.equal(pool.stats.free, 1)
  await pool.destroy()
})

test('idle connections: the most recent takes the next request; the one idle longest, once halfway to its keep-alive, takes it instead', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 2, keepAliveTimeoutMs: 2_000 })
  const before = server.connections
  // Each answer names the connection it came on (the client's port, as the server sees it).
  server.script = (_req, socket) => {
    const port = String(socket.remotePort)
    void socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${port.length}\r\n\r\n${port}`)
  }
  const [first, second] = await Promise.all([send(pool).done, send(pool).done])
  assert.equal(server.connections - before, 2)
  assert.notEqual(first.body.toString(), second.body.toString())
  const recent = (await send(pool).done).body.toString()
  assert.equal((await send(pool).done).body.toString(), recent, 'the most recently used connection again')
  const other = recent === first.body.toString() ? second.body.toString() : first.body.toString()
  // Past half the keep-alive (1 s) and well before it ends (2 s), the longest idle goes first.
  await new Promise((resolve) => setTimeout(resolve, 1_100))
  assert.equal((await send(pool).done).body.toString(), other, 'the connection idle longest, before it expires')
  assert.equal(server.connections - before, 2, 'no connection was closed and reopened')
  assert.equal(pool.stats.connected, 2)
  await pool.destroy()
})

test('header values remembered from one response never leak into the next: same length, other bytes, other case, longer than remembered', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 1 })
  const long = 'x'.repeat(100)
  const heads = [
    ['Content-Type: application/json', 'Date: Wed, 02 Dec 2026 13:00:00 GMT', 'Keep-Alive: timeout=5', `Server: ${long}`],
    ['content-type: application/jsoN', 'date: Wed, 02 Dec 2026 13:00:01 GMT', 'keep-alive: timeout=9', `server: ${long}y`],
    ['CONTENT-TYPE: application/json', 'date: Wed, 02 Dec 2026 13:00:01 GMT', 'keep-alive: timeout=9', `server: ${long}`],
    ['content-type:  text/plain ', 'date:', 'keep-alive: max=3', 'server: s'],
  ]
  const seen: Record<string, string | string[]>[] = []
  for (const lines of heads) {
    server.script = (_req, socket) => void socket.write(`HTTP/1.1 200 OK\r\n${lines.join('\r\n')}\r\ncontent-length: 1\r\n\r\na`)
    seen.push((await send(pool).done).headers)
  }
  const picked = seen.map((h) => [h['content-type'], h.date, h['keep-alive'], h.server])
  assert.deepEqual(picked, [
    ['application/json', 'Wed, 02 Dec 2026 13:00:00 GMT', 'timeout=5', long],
    ['application/jsoN', 'Wed, 02 Dec 2026 13:00:01 GMT', 'timeout=9', `${long}y`],
    ['application/json', 'Wed, 02 Dec 2026 13:00:01 GMT', 'timeout=9', long],
    ['text/plain', '', 'max=3', 's'],
  ])
  await pool.destroy()
})

test('bodiless answers: 204, 304 and HEAD end at their head; headers keep repeats as arrays', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 1 })
  server.script = (_req, socket) => void socket.write('HTTP/1.1 204 No Content\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n')
  const out = await send(pool).done
  assert.equal(out.status, 204)
  assert.deepEqual(out.headers['set-cookie'], ['a=1', 'b=2'])
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n')
  const head = await send(pool, null, [], 'HEAD').done
  assert.equal(head.error, null)
  assert.equal(head.body.length, 0)
  server.script = (_req, socket) => void socket.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n')
  assert.equal((await send(pool).done).status, 304)
  await pool.destroy()
})

test('malformed framing fails the request with HPE_INVALID (or the overflow code) and closes the connection', async () => {
  const cases: [string, string, string][] = [
    ['both lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 'HPE_INVALID'],
    ['conflicting lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd', 'HPE_INVALID'],
    ['a signed length', 'HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc', 'HPE_INVALID'],
    ['another coding', 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 'HPE_INVALID'],
    ['not HTTP', 'HTTX/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 'HPE_INVALID'],
    ['HTTP/2 status line', 'HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n', 'HPE_INVALID'],
    ['a bad status', 'HTTP/1.1 20x OK\r\ncontent-length: 0\r\n\r\n', 'HPE_INVALID'],
    ['a bare LF in the head', 'HTTP/1.1 200 OK\ncontent-length: 0\r\n\r\n', 'HPE_INVALID'],
    ['a folded header', 'HTTP/1.1 200 OK\r\nx-a: 1\r\n  folded\r\ncontent-length: 0\r\n\r\n', 'HPE_INVALID'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n', 'HPE_INVALID'],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\nx-a: a\x01b\r\ncontent-length: 0\r\n\r\n', 'HPE_INVALID'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 'HPE_INVALID'],
    ['chunk data past its size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n', 'HPE_INVALID'],
    ['a huge chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n', 'HPE_INVALID'],
    ['an upgrade', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n', 'HPE_INVALID'],
    ['a head past 16 KiB', `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(17_000)}\r\ncontent-length: 0\r\n\r\n`, 'UND_ERR_HEADERS_OVERFLOW'],
  ]
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 1 })
  for (const [name, raw, code] of cases) {
    server.script = (_req, socket) => void socket.write(raw)
    const out = await send(pool).done
    assert.equal(out.error?.code, code, `${name}: ${out.error?.message ?? 'no error'}`)
    const before = server.connections
    server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    const next = await send(pool).done
    assert.equal(next.body.toString(), 'ok', `${name}: the pool recovers`)
    assert.equal(server.connections, before + 1, `${name}: a new connection after the bad one`)
  }
  await pool.destroy()
})

test('transport failures carry undici codes: closed mid-body, refused, header and body timeouts', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, headersTimeoutMs: 150, bodyTimeoutMs: 150 })
  server.script = (_req, socket) => void socket.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc')
  const cut = await send(pool).done
  assert.equal(cut.error?.code, 'UND_ERR_SOCKET')
  assert.equal(cut.body.toString(), 'abc')
  server.script = () => undefined
  const started = performance.now()
  const silent = await send(pool).done
  assert.equal(silent.error?.code, 'UND_ERR_HEADERS_TIMEOUT')
  assert.ok(performance.now() - started >= 150)
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n')
  const stalled = await send(pool).done
  assert.equal(stalled.error?.code, 'UND_ERR_BODY_TIMEOUT')
  assert.equal(stalled.body.toString(), 'a')
  await pool.destroy()

  const closed = new RawServer()
  await closed.start()
  await new Promise<void>((resolve) => closed.server.close(() => resolve()))
  const refused = new Http1Pool(closed.url, OPTIONS)
  const out = await send(refused).done
  assert.equal(out.error?.code, 'ECONNREFUSED')
  assert.deepEqual(send(refused).calls, ['start'])
  await refused.destroy()
})

test('a paused response is not timed out, and resumes where it stopped', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, bodyTimeoutMs: 100 })
  let release: () => void = () => undefined
  server.script = async (_req, socket) => {
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n')
    await new Promise<void>((resolve) => (release = resolve))
    socket.write('1\r\nb\r\n0\r\n\r\n')
  }
  const handler = send(pool)
  let paused = false
  handler.onChunk = (c) => {
    if (paused) return
    paused = true
    c.pause()
    // Paused for longer than the body timeout: no timeout while the gateway holds it.
    setTimeout(() => {
      c.resume()
      release()
    }, 300)
  }
  const out = await handler.done
  assert.equal(out.error, null)
  assert.equal(out.body.toString(), 'ab')
  await pool.destroy()
})

test('abort: the handler hears the reason once, the connection is dropped, the pool serves the next request', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 1 })
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n')
  const handler = send(pool)
  const reason = new Error('cancelled')
  handler.onChunk = (c) => c.abort(reason)
  const out = await handler.done
  assert.equal(out.error, reason)
  assert.deepEqual(handler.calls, ['start', 'headers', 'error'])
  handler.controller!.abort(new Error('again'))
  assert.deepEqual(handler.calls, ['start', 'headers', 'error'])
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  assert.equal((await send(pool).done).body.toString(), 'ok')
  // A request aborted while it waits for a connection leaves the queue.
  server.script = () => undefined
  const busy = send(pool)
  const queued = send(pool)
  assert.equal(pool.stats.pending, 1)
  queued.controller!.abort(reason)
  assert.equal((await queued.done).error, reason)
  assert.equal(pool.stats.pending, 0)
  busy.controller!.abort(reason)
  await busy.done
  await pool.destroy()
})

test('bytes an idle connection was never asked for drop it; header injection and bad paths are refused', async () => {
  const pool = new Http1Pool(server.url, { ...OPTIONS, connections: 1 })
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA')
  assert.equal((await send(pool).done).body.toString(), 'ok')
  const before = server.connections
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  assert.equal((await send(pool).done).body.toString(), 'ok')
  assert.equal(server.connections, before + 1, 'the connection that carried extra bytes was not reused')
  const injected = await send(pool, null, ['x-a', 'v\r\nx-b: smuggled']).done
  assert.equal(injected.error?.code, 'UND_ERR_INVALID_ARG')
  const wide = await send(pool, null, ['x-a', 'caf\u00e9 \u4e2d']).done
  assert.equal(wide.error?.code, 'UND_ERR_INVALID_ARG', 'a value that is not Latin-1 cannot be written byte for byte')
  const handler = new Collector()
  pool.dispatch({ path: '/v1 x', method: 'GET' }, handler)
  assert.equal((await handler.done).error?.code, 'UND_ERR_INVALID_ARG')
  await pool.destroy()
})

test('close() lets a request in flight finish, then refuses new ones', async () => {
  const pool = new Http1Pool(server.url, OPTIONS)
  server.script = async (_req, socket) => {
    await new Promise((resolve) => setImmediate(resolve))
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  }
  const inflight = send(pool)
  const closed = pool.close()
  assert.equal((await inflight.done).body.toString(), 'ok')
  await closed
  assert.equal(pool.stats.connected, 0)
  assert.equal((await send(pool).done).error?.code, 'UND_ERR_CLOSED')
})

test('request(): a buffered GET for probes and warm-up, with an abort signal', async () => {
  const pool = new Http1Pool(server.url, OPTIONS)
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"data":[]}')
  const res = await pool.request({ path: '/v1/models', method: 'GET' })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { data: [] })
  server.script = () => undefined
  await assert.rejects(pool.request({ path: '/health', method: 'GET', signal: AbortSignal.timeout(50) }), { name: 'TimeoutError' })
  await pool.destroy()
})

test("pool.client: auto gives a plain-HTTP upstream the gateway's pool; TLS, pipelining and `undici` keep undici's", async () => {
  const { UpstreamSchema } = await import('../../gateway/src/config/schema.ts')
  const { Upstream } = await import('../../gateway/src/upstream/upstream.ts')
  const { Pool } = await import('undici')
  const make = (extra: Record<string, unknown>, url = server.url): InstanceType<typeof Upstream> => new Upstream(UpstreamSchema.parse({ name: 'u', url, models: ['*'], ...extra }) as never)
  const cases: [InstanceType<typeof Upstream>, boolean][] = [
    [make({}), true],
    [make({ pool: { client: 'undici' } }), false],
    [make({ pool: { pipelining: 2 } }), false],
    [make({}, 'https://api.example.com'), false],
  ]
  for (const [upstream, own] of cases) {
    assert.equal(upstream.pool instanceof Http1Pool, own)
    assert.equal(upstream.pool instanceof Pool, !own)
  }
  // Either pool answers the same bodiless request the same way.
  server.script = (_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nup')
  for (const [upstream] of cases.slice(0, 2)) {
    const res = await upstream.request({ path: '/health', method: 'GET', signal: AbortSignal.timeout(2_000) })
    assert.equal(res.statusCode, 200)
    assert.equal(await res.body.text(), 'up')
  }
  for (const [upstream] of cases) await upstream.destroy()
})
