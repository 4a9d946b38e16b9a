/**
 * The load generator's HTTP/1.1 client: keep-alive sockets, request bytes built once, and a small
 * response parser (status, the few headers we read, Content-Length or chunked bodies).
 *
 * Why not undici: a benchmark client's own jitter is sampled in proportion to how long a request
 * takes, so it inflates the slower path's tail and shows up as "added" latency. Measured on this
 * machine, the same gateway read +0.08 ms p50 / +0.56 ms p99 added through an undici Pool (raw
 * dispatch API) and +0.06 / +0.23 ms through a raw socket. This client does per request only
 * what measuring needs. It speaks to our own servers only (simulator, gateway, naive proxy).
 */
import { connect, type Socket } from 'node:net'

export interface RequestSpec {
  method: 'POST' | 'GET'
  path: string
  body: Buffer | null
  headers: Record<string, string>
}

export interface Exchange {
  status: number
  /** Send to first body byte, ms. */
  firstByteMs: number
  /** Send to end of body, ms. */
  totalMs: number
  /** Socket reads that carried body bytes. */
  reads: number
  /** SSE events (`data:` prefixes) in the body, when counted. */
  events: number
  bytes: number
  /** Value of the one response header the client was asked to keep (e.g. `x-velox-upstream`). */
  keptHeader: string | null
  /** The gateway's own account of its time (`Server-Timing: gw;dur=...`), ms; NaN when absent. */
  serverTimingGwMs: number
  /** Transport error, or the start of an error response's body. */
  error: string | null
}

const HEADER_END = Buffer.from('\r\n\r\n')
const CRLF = Buffer.from('\r\n')
const DATA_PREFIX = Buffer.from('data:')
const ERROR_BODY_CHARS = 300
const GW_DURATION = /(?:^|,)\s*gw;(?:[^,]*;)?\s*dur=([\d.]+)/

/** Request bytes per spec object: a fixed spec is serialised once, not per request. */
const serialised = new WeakMap<RequestSpec, Buffer>()

function requestBytes(spec: RequestSpec, host: string): Buffer {
  let bytes = serialised.get(spec)
  if (bytes) return bytes
  let head = `${spec.method} ${spec.path} HTTP/1.1\r\nhost: ${host}\r\n`
  for (const [name, value] of Object.entries(spec.headers)) head += `${name}: ${value}\r\n`
  head += `content-length: ${spec.body?.length ?? 0}\r\n\r\n`
  bytes = spec.body ? Buffer.concat([Buffer.from(head, 'latin1'), spec.body]) : Buffer.from(head, 'latin1')
  serialised.set(spec, bytes)
  return bytes
}

/** Where the parser is in the current response. */
const State = { head: 0, fixed: 1, chunkSize: 2, chunkData: 3, chunkDataEnd: 4, trailers: 5, untilClose: 6 } as const
type ParseState = (typeof State)[keyof typeof State]

interface Pending {
  start: number
  countEvents: boolean
  result: Exchange
  resolve: (exchange: Exchange) => void
}

class Connection {
  readonly #pool: BenchClient
  readonly socket: Socket
  #pending: Pending | null = null
  #state: ParseState = State.head
  /** Response head bytes carried over from an earlier read. */
  #head: Buffer | null = null
  /** A chunk-size line split across reads. */
  #partialLine = ''
  #remaining = 0
  #closeAfter = false
  closed = false

  constructor(pool: BenchClient, port: number, host: string) {
    this.#pool = pool
    this.socket = connect({ port, host, noDelay: true })
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    this.socket.on('error', (error) => this.#fail(error.message))
    this.socket.on('close', () => {
      this.closed = true
      if (this.#state === State.untilClose && this.#pending) this.#finish()
      else this.#fail('connection closed')
      this.#pool.dropped(this)
    })
  }

  send(bytes: Buffer, pending: Pending): void {
    this.#pending = pending
    this.#state = State.head
    this.#head = null
    this.#partialLine = ''
    this.#closeAfter = false
    pending.start = performance.now()
    this.socket.write(bytes)
  }

  #onData(chunk: Buffer): void {
    const pending = this.#pending
    if (!pending) return
    let offset = 0
    let sawBody = false
    while (offset < chunk.length && this.#pending) {
      switch (this.#state) {
        case State.head: {
          const buffered = this.#head ? Buffer.concat([this.#head, chunk.subarray(offset)]) : chunk.subarray(offset)
          const end = buffered.indexOf(HEADER_END)
          if (end === -1) {
            this.#head = Buffer.from(buffered)
            return
          }
          this.#head = null
          const consumed = end + 4 - (buffered.length - (chunk.length - offset))
          offset += consumed
          this.#onHead(buffered.toString('latin1', 0, end), pending)
          break
        }
        case State.fixed: {
          const n = Math.min(this.#remaining, chunk.length - offset)
          this.#body(chunk.subarray(offset, offset + n), pending)
          sawBody = true
          offset += n
          this.#remaining -= n
          if (this.#remaining === 0) this.#finish()
          break
        }
        case State.chunkSize: {
          const end = chunk.indexOf(CRLF, offset)
          const line = this.#partialLine + chunk.toString('latin1', offset, end === -1 ? chunk.length : end)
          if (end === -1) {
            this.#partialLine = line
            return
          }
          this.#partialLine = ''
          offset = end + 2
          const size = parseInt(line, 16)
          if (Number.isNaN(size)) return this.#fail(`bad chunk size "${line}"`)
          if (size === 0) this.#state = State.trailers
          else {
            this.#remaining = size
            this.#state = State.chunkData
          }
          break
        }
        case State.chunkData: {
          const n = Math.min(this.#remaining, chunk.length - offset)
          this.#body(chunk.subarray(offset, offset + n), pending)
          sawBody = true
          offset += n
          this.#remaining -= n
          if (this.#remaining === 0) {
            this.#remaining = 2
            this.#state = State.chunkDataEnd
          }
          break
        }
        case State.chunkDataEnd: {
          const n = Math.min(this.#remaining, chunk.length - offset)
          offset += n
          this.#remaining -= n
          if (this.#remaining === 0) this.#state = State.chunkSize
          break
        }
        case State.trailers: {
          // Our servers send no trailers: what follows the last chunk is the final CRLF.
          const end = chunk.indexOf(CRLF, offset)
          if (end === -1) return
          offset = end + 2
          this.#finish()
          break
        }
        case State.untilClose: {
          this.#body(chunk.subarray(offset), pending)
          sawBody = true
          offset = chunk.length
          break
        }
      }
    }
    if (sawBody) pending.result.reads++
  }

  #onHead(head: string, pending: Pending): void {
    const result = pending.result
    const lines = head.split('\r\n')
    result.status = Number(lines[0]!.slice(9, 12))
    let contentLength = -1
    let chunked = false
    const keep = this.#pool.keepHeader
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).toLowerCase()
      const value = line.slice(colon + 1).trim()
      if (name === 'content-length') contentLength = Number(value)
      else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked')
      else if (name === 'connection') this.#closeAfter = value.toLowerCase() === 'close'
      else if (name === 'server-timing') {
        const match = GW_DURATION.exec(value)
        if (match) result.serverTimingGwMs = Number(match[1])
      }
      if (name === keep) result.keptHeader = value
    }
    if (chunked) this.#state = State.chunkSize
    else if (contentLength > 0) {
      this.#remaining = contentLength
      this.#state = State.fixed
    } else if (contentLength === 0 || result.status === 204 || result.status === 304) this.#finish()
    else this.#state = State.untilClose
  }

  #body(bytes: Buffer, pending: Pending): void {
    const result = pending.result
    if (result.bytes === 0) result.firstByteMs = performance.now() - pending.start
    result.bytes += bytes.length
    if (pending.countEvents) {
      for (let i = bytes.indexOf(DATA_PREFIX); i !== -1; i = bytes.indexOf(DATA_PREFIX, i + DATA_PREFIX.length)) result.events++
    }
    // Keep the start of an error body: it names the failure better than the status does.
    if (result.status !== 200 && (result.error?.length ?? 0) < ERROR_BODY_CHARS) {
      result.error = ((result.error ?? '') + bytes.toString('utf8')).slice(0, ERROR_BODY_CHARS)
    }
  }

  #finish(): void {
    const pending = this.#pending
    if (!pending) return
    this.#pending = null
    const result = pending.result
    result.totalMs = performance.now() - pending.start
    if (result.bytes === 0) result.firstByteMs = result.totalMs
    if (this.#closeAfter || this.closed) this.socket.destroy()
    else this.#pool.released(this)
    pending.resolve(result)
  }

  #fail(message: string): void {
    const pending = this.#pending
    if (!pending) return
    this.#pending = null
    pending.result.status = 0
    pending.result.error = message
    pending.result.totalMs = performance.now() - pending.start
    this.socket.destroy()
    pending.resolve(pending.result)
  }
}

interface Queued {
  bytes: Buffer
  pending: Pending
}

/** Up to `connections` keep-alive sockets to one origin; requests beyond that wait in order. */
export class BenchClient {
  readonly origin: string
  readonly keepHeader: string | null
  readonly #host: string
  readonly #port: number
  readonly #maxConnections: number
  readonly #all = new Set<Connection>()
  readonly #idle: Connection[] = []
  readonly #queue: Queued[] = []

  constructor(origin: string, options: { connections: number; keepHeader?: string }) {
    const url = new URL(origin)
    this.origin = origin
    this.#host = url.hostname
    this.#port = Number(url.port || 80)
    this.#maxConnections = options.connections
    this.keepHeader = options.keepHeader?.toLowerCase() ?? null
  }

  /** One request; resolves when the body has ended (failures resolve with status 0, never reject). */
  exchange(spec: RequestSpec, countEvents: boolean): Promise<Exchange> {
    return new Promise((resolve) => {
      const pending: Pending = {
        start: 0,
        countEvents,
        result: { status: 0, firstByteMs: NaN, totalMs: NaN, reads: 0, events: 0, bytes: 0, keptHeader: null, serverTimingGwMs: NaN, error: null },
        resolve,
      }
      const bytes = requestBytes(spec, this.#host)
      const connection = this.#idle.pop() ?? this.#open()
      if (connection) connection.send(bytes, pending)
      else this.#queue.push({ bytes, pending })
    })
  }

  /** Called by a connection that finished its response and can take the next request. */
  released(connection: Connection): void {
    const next = this.#queue.shift()
    if (next) connection.send(next.bytes, next.pending)
    else this.#idle.push(connection)
  }

  dropped(connection: Connection): void {
    this.#all.delete(connection)
    const index = this.#idle.indexOf(connection)
    if (index !== -1) this.#idle.splice(index, 1)
    const next = this.#queue.shift()
    if (next) {
      const replacement = this.#open()
      if (replacement) replacement.send(next.bytes, next.pending)
      else this.#queue.unshift(next)
    }
  }

  #open(): Connection | null {
    if (this.#all.size >= this.#maxConnections) return null
    const connection = new Connection(this, this.#port, this.#host)
    this.#all.add(connection)
    return connection
  }

  close(): Promise<void> {
    for (const connection of this.#all) connection.socket.destroy()
    return Promise.resolve()
  }
}
