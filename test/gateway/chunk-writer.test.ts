/**
 * Chunks of a proxied response written straight to the client's socket (proxy/chunk-writer.ts):
 * the framing is node:http's own, the socket is offered only once node:http holds nothing back,
 * the first chunk goes with the stored head in one write, and a raw client reads the same bytes,
 * in the same order, on a keep-alive connection.
 */
import assert from 'node:assert/strict'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { directSocket, firstChunkSocket, frameChunk, writeChunk, writeFirstChunk } from '../../gateway/src/proxy/chunk-writer.ts'

test('a chunk is framed as node:http frames it: size in hex, CRLF, the bytes, CRLF', () => {
  for (const size of [1, 9, 10, 15, 16, 17, 255, 256, 4095, 4096, 65535, 65536, 200_001]) {
    const bytes = Buffer.alloc(size, 0x61 + (size % 26))
    const framed = frameChunk(bytes)
    assert.deepEqual(framed, Buffer.concat([Buffer.from(size.toString(16) + '\r\n'), bytes, Buffer.from('\r\n')]), `size ${size}`)
  }
})

let server: Server
const seen: Array<{ before: boolean; afterHead: boolean; afterEnd: boolean }> = []
/** Per first-chunk response: offered before writeHead, after it, whether the write left nothing corked or queued, offered again after. */
const firstSeen: Array<{ beforeHead: boolean; stored: boolean; unqueued: boolean | null; again: boolean }> = []

function answer(res: ServerResponse, direct: boolean, first: boolean): void {
  const beforeHead = firstChunkSocket(res) !== null // no head stored yet
  res.writeHead(200, ['content-type', 'text/event-stream'])
  const before = directSocket(res) !== null // head stored, not sent: must go through res.write
  const headSocket = firstChunkSocket(res)
  let unqueued: boolean | null = null
  if (first && headSocket !== null) {
    writeFirstChunk(res, headSocket, Buffer.from('data: 1\n\n'))
    // Handed to the kernel now, not corked until the next tick or queued in node:http.
    unqueued = headSocket.writableCorked === 0 && headSocket.writableLength === 0
  } else res.write('data: 1\n\n')
  if (first) firstSeen.push({ beforeHead, stored: headSocket !== null, unqueued, again: firstChunkSocket(res) !== null })
  const socket = directSocket(res)
  const afterHead = socket !== null
  for (let i = 2; i <= 4; i++) {
    const event = Buffer.from(`data: ${i}\n\n`)
    if (direct && socket !== null) writeChunk(res, socket, event)
    else res.write(event)
  }
  res.end()
  seen.push({ before, afterHead, afterEnd: directSocket(res) !== null })
}

const LENGTH_BODY = ['{"id":', '"chatcmpl-1"}']
/** Per Content-Length response: whether the head and first chunk went in one write, leaving nothing queued or corked. */
const lengthSeen: Array<{ stored: boolean; unqueued: boolean | null }> = []

/** A body with a Content-Length, in two chunks: through res.write, or straight to the socket, unframed. */
function answerWithLength(res: ServerResponse, direct: boolean): void {
  res.writeHead(200, ['content-type', 'application/json', 'content-length', String(LENGTH_BODY.join('').length)])
  const headSocket = direct ? firstChunkSocket(res) : null
  let unqueued: boolean | null = null
  if (headSocket !== null) {
    writeFirstChunk(res, headSocket, Buffer.from(LENGTH_BODY[0]!))
    unqueued = headSocket.writableCorked === 0 && headSocket.writableLength === 0
    writeChunk(res, directSocket(res)!, Buffer.from(LENGTH_BODY[1]!))
  } else for (const chunk of LENGTH_BODY) res.write(chunk)
  if (direct) lengthSeen.push({ stored: headSocket !== null, unqueued })
  res.end()
}

before(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => (req.url!.startsWith('/length') ? answerWithLength(res, req.url === '/length/direct') : answer(res, req.url !== '/node', req.url === '/first')))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})
after(() => server.close())

/** Two requests on one connection; resolves with everything the server sent. */
function exchange(paths: string[]): Promise<string> {
  const { port } = server.address() as AddressInfo
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      text += d
      if (text.split('0\r\n\r\n').length > paths.length) {
        socket.destroy()
        resolve(text)
      }
    })
    socket.on('error', reject)
    socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nhost: x\r\n\r\n`).join(''))
  })
}

function bodies(raw: string): string[] {
  return raw
    .split(/HTTP\/1\.1 200 OK\r\n/)
    .slice(1)
    .map((response) => response.slice(response.indexOf('\r\n\r\n') + 4))
}

test('direct writes give the client the bytes res.write gives, pipelined requests included', async () => {
  seen.length = 0
  const [viaNode] = bodies(await exchange(['/node']))
  const direct = bodies(await exchange(['/direct', '/direct']))
  assert.equal(direct.length, 2)
  for (const body of direct) assert.equal(body, viaNode)
  assert.match(viaNode!, /^9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n9\r\ndata: 3\n\n\r\n9\r\ndata: 4\n\n\r\n0\r\n\r\n$/)
  // Never before the head went out, never after the end. Once the head is out, the socket; but not
  // for the pipelined second response, whose bytes node:http queues until the first one finishes.
  assert.deepEqual(seen, [
    { before: false, afterHead: true, afterEnd: false },
    { before: false, afterHead: true, afterEnd: false },
    { before: false, afterHead: false, afterEnd: false },
  ])
})

test('the head and first chunk in one write give the client the bytes res.write gives, pipelined requests included', async () => {
  firstSeen.length = 0
  const [viaNode] = bodies(await exchange(['/node']))
  const raw = await exchange(['/first', '/first'])
  const first = bodies(raw)
  assert.equal(first.length, 2)
  for (const body of first) assert.equal(body, viaNode)
  assert.equal(raw.split('content-type: text/event-stream\r\n').length, 3, 'each response has its own head')
  // The first response's head goes out with its first chunk, at once; the pipelined second one's
  // head waits in node:http behind the first response, so it takes res.write's way.
  assert.deepEqual(firstSeen, [
    { beforeHead: false, stored: true, unqueued: true, again: false },
    { beforeHead: false, stored: false, unqueued: null, again: false },
  ])
})

test('a body with a Content-Length goes unframed, its head and first chunk in one write, with the bytes res.write gives', async () => {
  lengthSeen.length = 0
  const { port } = server.address() as AddressInfo
  const get = (paths: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      let text = ''
      socket.setEncoding('latin1')
      socket.on('data', (d: string) => {
        text += d
        if (text.split(LENGTH_BODY.join('')).length > paths.length) {
          socket.destroy()
          resolve(text)
        }
      })
      socket.on('error', reject)
      socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nhost: x\r\n\r\n`).join(''))
    })
  const viaNode = await get(['/length/node', '/length/node'])
  const direct = await get(['/length/direct', '/length/direct'])
  assert.equal(direct.replace(/date: [^\r]+/gi, ''), viaNode.replace(/date: [^\r]+/gi, ''))
  assert.match(direct, /content-length: 19\r\n[^]*\r\n\r\n\{"id":"chatcmpl-1"\}HTTP\/1\.1 200 OK/)
  // The pipelined second response's head waits in node:http behind the first: res.write's way.
  assert.deepEqual(lengthSeen, [
    { stored: true, unqueued: true },
    { stored: false, unqueued: null },
  ])
})

test('not a node:http response: no socket offered', () => {
  assert.equal(directSocket({ destroyed: false, headersSent: true } as never), null)
  assert.equal(firstChunkSocket({ destroyed: false, headersSent: false } as never), null)
})
