/**
 * A raw HTTP/1.1 exchange over one TCP connection: writes exactly the bytes given (so framing can
 * be malformed on purpose), then parses every response that comes back until the server closes
 * the connection, the expected count arrived, or the deadline passes.
 */
import net from 'node:net'

export interface WireResponse {
  status: number
  headers: Map<string, string[]>
  body: Buffer
  /** The body was cut by the connection closing before its declared length. */
  truncated: boolean
}

export interface WireResult {
  responses: WireResponse[]
  /** The deadline passed with fewer responses than expected. */
  timedOut: boolean
  /** Bytes that came but do not parse as a response. */
  garbage: boolean
  ms: number
}

export interface ExchangeOptions {
  port: number
  /** Written in order; a number is a pause (ms) between writes. */
  pieces: Array<Buffer | string | number>
  /** Responses to wait for before closing (pipelined requests send several). */
  expect: number
  timeoutMs: number
  /** Responses to HEAD have no body whatever their headers say. */
  head?: boolean
}

const CRLF2 = Buffer.from('\r\n\r\n')

export function exchange(opts: ExchangeOptions): Promise<WireResult> {
  const started = performance.now()
  return new Promise((resolve) => {
    const socket = net.connect(opts.port, '127.0.0.1')
    socket.setNoDelay(true)
    let buf: Buffer = Buffer.alloc(0)
    const responses: WireResponse[] = []
    let garbage = false
    let done = false
    // A pause between pieces ends with the exchange: its timer must not keep the process alive.
    let pause: { timer: NodeJS.Timeout; resume: () => void } | null = null
    const finish = (timedOut: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (pause !== null) {
        clearTimeout(pause.timer)
        pause.resume()
      }
      socket.destroy()
      // Whatever is left when the connection closed: a response cut short, or bytes that are not one.
      if (buf.length > 0) {
        const partial = parseOne(buf, opts.head === true, true)
        if (partial !== null && partial !== 'garbage') responses.push(partial.response)
        else garbage = true
      }
      resolve({ responses, timedOut, garbage, ms: performance.now() - started })
    }
    const timer = setTimeout(() => finish(responses.length < opts.expect), opts.timeoutMs)
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      for (;;) {
        const r = parseOne(buf, opts.head === true, false)
        if (r === null) break
        if (r === 'garbage') {
          garbage = true
          buf = Buffer.alloc(0)
          break
        }
        buf = buf.subarray(r.used)
        if (r.response.status >= 100 && r.response.status < 200) continue
        responses.push(r.response)
        if (responses.length >= opts.expect) return finish(false)
      }
    })
    socket.on('error', () => undefined)
    socket.on('close', () => finish(responses.length < opts.expect && false))
    void (async () => {
      for (const piece of opts.pieces) {
        if (done) return
        if (typeof piece === 'number') {
          await new Promise<void>((resume) => (pause = { timer: setTimeout(resume, piece), resume }))
          pause = null
        }
        else if (!socket.destroyed) await new Promise<void>((r) => socket.write(piece, () => r()))
      }
    })().catch(() => undefined)
  })
}

/** One response from the start of `buf`, null when more bytes are needed (unless `atEof`). */
function parseOne(buf: Buffer, head: boolean, atEof: boolean): { response: WireResponse; used: number } | 'garbage' | null {
  const end = buf.indexOf(CRLF2)
  if (end === -1) return atEof || buf.length > 65_536 ? 'garbage' : null
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]!)
  if (m === null) return 'garbage'
  const status = Number(m[1])
  const headers = new Map<string, string[]>()
  for (const line of lines.slice(1)) {
    const at = line.indexOf(':')
    if (at <= 0) return 'garbage'
    const name = line.slice(0, at).trim().toLowerCase()
    const list = headers.get(name) ?? []
    list.push(line.slice(at + 1).trim())
    headers.set(name, list)
  }
  const bodyStart = end + 4
  const response = (body: Buffer, truncated: boolean): WireResponse => ({ status, headers, body, truncated })
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) return { response: response(Buffer.alloc(0), false), used: bodyStart }
  const te = headers.get('transfer-encoding')?.join(',').toLowerCase() ?? ''
  if (te.includes('chunked')) {
    const chunks: Buffer[] = []
    let at = bodyStart
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at)
      if (lineEnd === -1) return atEof ? { response: response(Buffer.concat(chunks), true), used: buf.length } : null
      const size = parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16)
      if (!Number.isFinite(size)) return 'garbage'
      if (size === 0) {
        const trailerEnd = buf.indexOf('\r\n', lineEnd + 2)
        if (trailerEnd === -1) return atEof ? { response: response(Buffer.concat(chunks), false), used: buf.length } : null
        return { response: response(Buffer.concat(chunks), false), used: trailerEnd + 2 }
      }
      if (buf.length < lineEnd + 2 + size + 2) return atEof ? { response: response(Buffer.concat([...chunks, buf.subarray(lineEnd + 2)]), true), used: buf.length } : null
      chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size))
      at = lineEnd + 2 + size + 2
    }
  }
  const cl = headers.get('content-length')
  if (cl !== undefined) {
    const n = Number(cl[0])
    if (!Number.isSafeInteger(n) || n < 0) return 'garbage'
    if (buf.length < bodyStart + n) return atEof ? { response: response(buf.subarray(bodyStart), true), used: buf.length } : null
    return { response: response(buf.subarray(bodyStart, bodyStart + n), false), used: bodyStart + n }
  }
  // Delimited by the connection closing.
  return atEof ? { response: response(buf.subarray(bodyStart), false), used: buf.length } : null
}

/** Is this an OpenAI-shaped error body: `{"error":{"message":string,"type":string,"code":...}}`? */
export function isOpenAIError(body: Buffer): boolean {
  try {
    const e = (JSON.parse(body.toString('utf8')) as { error?: { message?: unknown; type?: unknown; code?: unknown } }).error
    return typeof e === 'object' && e !== null && typeof e.message === 'string' && typeof e.type === 'string' && 'code' in e
  } catch {
    return false
  }
}

/** The gateway's own error code in a body, or null. */
export function gatewayCode(body: Buffer): string | null {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } }).error?.code
    return typeof code === 'string' && code.startsWith('GW_ERR_') ? code : null
  } catch {
    return null
  }
}
