/**
 * Limits on what a client may take from the gateway while it sends its request: the whole request
 * within `server.requestTimeoutMs`, the body at a minimum average rate once it has been arriving
 * for a while, and an answer the client can always read when the gateway refuses a body early.
 *
 * Node enforces `requestTimeout` (headers and body) but only looks every
 * `connectionsCheckingInterval` (30 s by default), so a 15 s limit let a trickled body stay 45 s;
 * the interval is brought down to a fraction of the limit. The rate is checked by one coarse
 * sweep over the uploads in progress, from the socket's own byte count: nothing per chunk.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { GatewayError } from '../errors.ts'

export interface ClientLimits {
  requestTimeoutMs: number
  /** Lowest average body rate once `bodyMinRateAfterMs` passed; 0 disables the rate check. */
  bodyMinBytesPerSecond: number
  bodyMinRateAfterMs: number
}

/** After refusing a request whose body is still arriving, keep reading (and discarding) this long before closing. */
const LINGER_MS = 3_000
const SWEEP_MS = 500

interface Upload {
  readonly guard: UploadGuard
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly startedAt: number
  readonly baseBytes: number
}

const kUpload = Symbol('velox.upload')
type Tracked = IncomingMessage & { [kUpload]?: Upload | undefined }

export class UploadGuard {
  readonly limits: ClientLimits
  private readonly uploads = new Set<Upload>()
  /** false when the rate check is off: nothing is watched and no sweep runs. */
  private readonly checksRate: boolean
  private timer: NodeJS.Timeout | null = null
  /** Called for every request the guard answered itself (for metrics). */
  private readonly onRefused: (status: number) => void

  constructor(server: Server, limits: ClientLimits, onRefused: (status: number) => void) {
    this.limits = limits
    this.onRefused = onRefused
    // Checked at listen time by Node: a trickled request is cut within a quarter of its limit.
    ;(server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(100, Math.min(1_000, Math.floor(limits.requestTimeoutMs / 4)))
    server.headersTimeout = Math.min(server.headersTimeout, limits.requestTimeoutMs)
    this.checksRate = limits.bodyMinBytesPerSecond > 0
  }

  /** Starts the sweep (once the server listens); calling it again does nothing. */
  start(): void {
    if (!this.checksRate || this.timer !== null) return
    this.timer = setInterval(() => this.sweep(performance.now()), SWEEP_MS)
    this.timer.unref()
  }

  /**
   * Called by the server for every request, before its handler. A request whose body the lean
   * handler takes is forgotten when the body is complete (`uploadEnded`, from the HTTP parser);
   * any other when its response closes. The sweep drops what is complete or destroyed.
   */
  watch(req: IncomingMessage, res: ServerResponse, lean: boolean): void {
    if (!this.checksRate || req.complete || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)) return
    const upload: Upload = { guard: this, req, res, startedAt: performance.now(), baseBytes: req.socket.bytesRead }
    ;(req as Tracked)[kUpload] = upload
    this.uploads.add(upload)
    if (!lean) res.on('close', forgetRes)
  }

  /** One pass over the uploads in progress: too slow on average gets 408 GW_ERR_BODY_TOO_SLOW. */
  sweep(now: number): void {
    if (this.uploads.size === 0) return
    const { bodyMinBytesPerSecond: rate, bodyMinRateAfterMs: after } = this.limits
    for (const u of this.uploads) {
      if (u.req.complete || u.req.destroyed) {
        this.uploads.delete(u)
        continue
      }
      const elapsed = now - u.startedAt
      if (elapsed < after) continue
      const bytes = u.req.socket.bytesRead - u.baseBytes
      if (bytes >= (rate * elapsed) / 1000) continue
      this.uploads.delete(u)
      this.onRefused(408)
      refuse(u.res, new GatewayError('GW_ERR_BODY_TOO_SLOW', String(rate)))
    }
  }

  forget(upload: Upload | undefined): void {
    if (upload !== undefined) this.uploads.delete(upload)
  }

  /** Uploads being watched (tests). */
  get watching(): number {
    return this.uploads.size
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.uploads.clear()
  }
}

/** The body of `req` is complete: its upload, if watched, is over. */
export function uploadEnded(req: IncomingMessage): void {
  const upload = (req as Tracked)[kUpload]
  upload?.guard.forget(upload)
}

function forgetRes(this: ServerResponse): void {
  const upload = (this.req as Tracked)[kUpload]
  upload?.guard.forget(upload)
}

/** Answers a request whose body is still arriving, then closes without resetting the answer away. */
function refuse(res: ServerResponse, err: GatewayError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const body = err.body()
  lingerOnClose(res.socket)
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' })
  res.end(body)
}

/**
 * Closing a socket with request bytes still arriving makes the kernel send a reset, which can
 * destroy the answer before the client reads it (a 413 to a 64 MB upload). Instead: send the
 * answer and our FIN, keep reading and discarding what the client still sends, and close once it
 * stops or LINGER_MS passed (a lingering close, as Apache and nginx do).
 */
export function lingerOnClose(socket: Socket | null): void {
  if (socket === null || socket.destroyed) return
  const s = socket as Socket & { destroySoon?: () => void }
  s.destroySoon = function lingeringClose(this: Socket): void {
    if (this.writable) this.end()
    const timer = setTimeout(() => this.destroy(), LINGER_MS)
    timer.unref()
    this.once('end', () => {
      clearTimeout(timer)
      this.destroy()
    })
    this.once('close', () => clearTimeout(timer))
    // Node's HTTP parser may already have stopped reading: make sure the bytes are consumed.
    this.resume()
  }
}
