/**
 * A proxied response's head built in one piece (proxy/response-head.ts): a raw client reads the
 * bytes node:http's own `writeHead` gives, whichever way the head was stored, and the cases
 * node:http decides differently (keep-alive off, headers set before, headers it reads, no body)
 * are left to node:http.
 */
import assert from 'node:assert/strict'
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { leanHeadSupported, writeResponseHead } from '../../gateway/src/proxy/response-head.ts'

interface Case {
  status: number
  headers: string[]
  /** Chunks written after the head; none: `res.end()` alone. */
  body?: string[]
  /** Before the head, as a rate-limit or CORS header would be. */
  preset?: [string, string]
}

const cases = new Map<string, Case>()
/** Per request id, whether node:http's writeHead was called by writeResponseHead. */
const usedNode = new Map<string, boolean>()

function answer(req: IncomingMessage, res: ServerResponse): void {
  const [, mode, id] = req.url!.split('/') as [string, 'node' | 'lean', string]
  const c = cases.get(id)!
  if (c.preset !== undefined) res.setHeader(c.preset[0], c.preset[1])
  if (mode === 'node') res.writeHead(c.status, c.headers)
  else {
    const writeHead = res.writeHead
    let called = false
    res.writeHead = ((...args: Parameters<ServerResponse['writeHead']>) => {
      called = true
      return writeHead.apply(res, args)
    }) as ServerResponse['writeHead']
    writeResponseHead(res, c.status, c.headers)
    usedNode.set(id, called)
  }
  for (const chunk of c.body ?? []) res.write(chunk)
  res.end()
}

let server: Server
let limited: Server
before(async () => {
  server = createServer(answer)
  limited = createServer(answer)
  limited.maxRequestsPerSocket = 7
  await Promise.all([server, limited].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))))
})
after(() => {
  for (const s of [server, limited]) {
    s.closeAllConnections()
    s.close()
  }
})

/** One request on its own connection; resolves with the response's bytes, its Date made constant. */
function fetchRaw(target: Server, path: string, requestHead = 'HTTP/1.1\r\nhost: x'): Promise<string> {
  const { port } = target.address() as AddressInfo
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('latin1')
    const done = (): void => {
      socket.destroy()
      resolve(text.replace(/Date: [^\r]+\r\n/, 'Date: (now)\r\n'))
    }
    socket.on('data', (d: string) => {
      text += d
      const headEnd = text.indexOf('\r\n\r\n')
      if (headEnd === -1) return
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text.slice(0, headEnd + 2))
      const noBody = /^HTTP\/1\.[01] (?:204|304) /.test(text)
      if (noBody || (length !== null ? text.length >= headEnd + 4 + Number(length[1]) : text.endsWith('0\r\n\r\n'))) done()
    })
    socket.on('end', done)
    socket.on('error', reject)
    socket.write(`GET ${path} ${requestHead}\r\n\r\n`)
  })
}

async function compare(id: string, c: Case, options: { target?: Server; requestHead?: string } = {}): Promise<{ raw: string; lean: boolean }> {
  cases.set(id, c)
  const target = options.target ?? server
  const viaNode = await fetchRaw(target, `/node/${id}`, options.requestHead)
  const viaLean = await fetchRaw(target, `/lean/${id}`, options.requestHead)
  assert.equal(viaLean, viaNode, id)
  return { raw: viaLean, lean: usedNode.get(id) === false }
}

const JSON_BODY = '{"id":"chatcmpl-1","choices":[]}'

test('this Node has the response fields the head is built from', () => {
  assert.equal(leanHeadSupported, true)
})

test('the common answers are built in one piece, with node:http\'s bytes', async () => {
  const plain = await compare('json', { status: 200, headers: ['content-type', 'application/json', 'content-length', String(JSON_BODY.length), 'date', 'Wed, 02 Dec 2026 17:58:53 GMT', 'x-velox-upstream', 'sim', 'x-request-id', 'r-1'], body: [JSON_BODY] })
  assert.equal(plain.lean, true)
  assert.match(plain.raw, /^HTTP\/1\.1 200 OK\r\ncontent-type: application\/json\r\ncontent-length: 32\r\ndate: Wed, 02 Dec 2026 17:58:53 GMT\r\nx-velox-upstream: sim\r\nx-request-id: r-1\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n\{/)
  const stream = await compare('sse', { status: 200, headers: ['content-type', 'text/event-stream', 'x-accel-buffering', 'no', 'cache-control', 'no-cache'], body: ['data: 1\n\n', 'data: 2\n\n'] })
  assert.equal(stream.lean, true)
  assert.match(stream.raw, /\r\nDate: \(now\)\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n/)
  for (const status of [201, 400, 404, 429, 500, 503]) {
    assert.equal((await compare(`status-${status}`, { status, headers: ['content-type', 'application/json', 'content-length', '2'], body: ['{}'] })).lean, true, String(status))
  }
  assert.equal((await compare('empty', { status: 200, headers: ['content-length', '0'] })).lean, true)
  assert.equal((await compare('latin1', { status: 200, headers: ['x-name', 'caf\u00e9', 'content-length', '2'], body: ['ok'] })).lean, true)
  const max = await compare('max', { status: 200, headers: ['content-length', '2'], body: ['ok'] }, { target: limited })
  assert.equal(max.lean, true)
  assert.match(max.raw, /\r\nKeep-Alive: timeout=5, max=7\r\n/)
})

test('what node:http decides differently is left to its writeHead, with the same bytes', async () => {
  const json = ['content-type', 'application/json', 'content-length', '2']
  const left: Array<[string, Case, { requestHead?: string }?]> = [
    ['http10', { status: 200, headers: json, body: ['{}'] }, { requestHead: 'HTTP/1.0' }],
    ['client-close', { status: 200, headers: json, body: ['{}'] }, { requestHead: 'HTTP/1.1\r\nhost: x\r\nconnection: close' }],
    ['closing', { status: 200, headers: [...json, 'connection', 'close'], body: ['{}'] }],
    ['preset', { status: 200, headers: json, body: ['{}'], preset: ['x-ratelimit-remaining', '9'] }],
    ['no-content', { status: 204, headers: [] }],
    ['not-modified', { status: 304, headers: [] }],
    ['unknown-status', { status: 599, headers: json, body: ['{}'] }],
    ['disposition', { status: 200, headers: [...json, 'content-disposition', 'attachment'], body: ['{}'] }],
  ]
  for (const [id, c, options] of left) assert.equal((await compare(id, c, options)).lean, false, id)
})

test('a header node:http refuses is refused the same way; another response gets its own writeHead', () => {
  const req = { method: 'POST', httpVersionMajor: 1, httpVersionMinor: 1, headers: {} } as IncomingMessage
  const codeOf = (write: (res: ServerResponse) => void): string | undefined => {
    try {
      write(new ServerResponse(req))
    } catch (err) {
      return (err as { code?: string }).code
    }
    return undefined
  }
  for (const headers of [['x-bad', 'a\r\nb'], ['bad name', 'x'], ['x-wide', '\u0100']]) {
    const own = codeOf((res) => res.writeHead(200, headers))
    assert.ok(own !== undefined, headers.join(' '))
    assert.equal(codeOf((res) => writeResponseHead(res, 200, headers)), own, headers.join(' '))
  }
  let called = 0
  writeResponseHead({ writeHead: () => called++ } as never, 200, ['content-length', '0'])
  assert.equal(called, 1)
})
