/**
 * The client output's body writes (proxy/client-output.ts) as the client's socket sees them: the
 * first chunk with the head in one write, one write per chunk after it, and the last bytes of an
 * answer whose end came in the same upstream read held for node:http's terminating chunk, so both
 * leave in one write. Counted at the socket's handle, where each call is one system call.
 */
import assert from 'node:assert/strict'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { after, before, test } from 'node:test'
import { ClientOutput } from '../../gateway/src/proxy/client-output.ts'

type Handle = Record<string, (...args: unknown[]) => unknown>
const WRITES = ['writeBuffer', 'writev', 'writeLatin1String', 'writeUtf8String', 'writeAsciiString', 'writeUcs2String']

/** Counts the writes `socket` hands its handle from now on. */
function countWrites(socket: Socket): { count: number } {
  const counter = { count: 0 }
  const handle = (socket as unknown as { _handle: Handle })._handle
  for (const name of WRITES) {
    const original = handle[name]!
    handle[name] = function (this: unknown, ...args: unknown[]) {
      counter.count++
      return original.apply(this, args)
    }
  }
  return counter
}

interface Seen {
  writes: number
  corkedAfterLast: number
}
const seen = new Map<string, Seen>()
const EVENTS = ['data: 1\n\n', 'data: 2\n\n', 'data: [DONE]\n\n']

function answer(path: string, res: ServerResponse): void {
  const counter = countWrites(res.socket!)
  const out = new ClientOutput(res)
  out.head(200, ['content-type', 'text/event-stream'])
  out.write(Buffer.from(EVENTS[0]!))
  out.write(Buffer.from(EVENTS[1]!))
  const ending = path !== '/apart'
  out.write(Buffer.from(EVENTS[2]!), ending)
  const corkedAfterLast = res.socket!.writableCorked
  const done = (): void => void seen.set(path, { writes: counter.count, corkedAfterLast })
  if (path === '/no-end') {
    // `ending` said, but the end comes later: the held bytes still leave when this task is done.
    queueMicrotask(() => {
      seen.set('/no-end:flushed', { writes: counter.count, corkedAfterLast: res.socket!.writableCorked })
      setTimeout(() => {
        out.end()
        done()
      }, 5)
    })
    return
  }
  out.end()
  done()
}

let server: Server
before(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => answer(req.url!, res))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})
after(() => server.close())

/** One request; resolves with the body bytes as the client read them, and how many reads. */
function fetchRaw(path: string): Promise<{ body: string; reads: number }> {
  const { port } = server.address() as AddressInfo
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    let reads = 0
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      text += d
      reads++
      if (text.endsWith('0\r\n\r\n')) {
        socket.destroy()
        resolve({ body: text.slice(text.indexOf('\r\n\r\n') + 4), reads })
      }
    })
    socket.on('error', reject)
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`)
  })
}

const FRAMED = EVENTS.map((e) => `${e.length.toString(16)}\r\n${e}\r\n`).join('') + '0\r\n\r\n'

test('the last bytes and the terminating chunk leave in one write when the end is known to follow', async () => {
  const held = await fetchRaw('/held')
  const apart = await fetchRaw('/apart')
  assert.equal(held.body, FRAMED)
  assert.equal(apart.body, FRAMED)
  // Head + first event, the second event, then the last event with the terminator.
  assert.deepEqual(seen.get('/held'), { writes: 3, corkedAfterLast: 1 })
  // Without the hint, the terminator is a write of its own.
  assert.deepEqual(seen.get('/apart'), { writes: 4, corkedAfterLast: 0 })
})

test('held bytes whose end does not follow leave once the task is done, nothing stays corked', async () => {
  const late = await fetchRaw('/no-end')
  assert.equal(late.body, FRAMED)
  assert.deepEqual(seen.get('/no-end:flushed'), { writes: 3, corkedAfterLast: 0 })
  assert.deepEqual(seen.get('/no-end'), { writes: 4, corkedAfterLast: 1 })
})
