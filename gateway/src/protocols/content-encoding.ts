/**
 * Compressed request bodies (`Content-Encoding: gzip | deflate | br | zstd`), decoded once as they
 * are read, off the event loop (zlib's thread pool), never past the body limit: a small
 * compressed body that would inflate beyond it is refused with 413 like a large plain one.
 */
import zlib from 'node:zlib'
import { GatewayError } from '../errors.ts'

type Decoder = (body: Buffer, options: { maxOutputLength: number }, cb: (err: Error | null, out: Buffer) => void) => void

const DECODERS: Record<string, Decoder> = {
  gzip: zlib.gunzip,
  'x-gzip': zlib.gunzip,
  deflate: zlib.inflate,
  br: zlib.brotliDecompress,
  zstd: zlib.zstdDecompress,
}

/** Codings a body may carry, for `Accept-Encoding`-style error messages. */
export const SUPPORTED_ENCODINGS = Object.freeze(['gzip', 'deflate', 'br', 'zstd'])

/** True when the header asks for no decoding. */
export function isIdentity(encoding: string | undefined): boolean {
  return encoding === undefined || encoding === '' || encoding === 'identity'
}

/**
 * Decodes `body` per its `Content-Encoding` (a list is applied in reverse order, as sent).
 * Calls back with a GatewayError: 415 for an unknown coding, 400 for bytes that do not decode,
 * 413 when the decoded body would exceed `limit`.
 */
export function decodeBody(body: Buffer, encoding: string, limit: number, done: (err: GatewayError | null, out?: Buffer) => void): void {
  const codings = encoding.toLowerCase().split(',').map((c) => c.trim()).filter((c) => c !== '' && c !== 'identity').reverse()
  for (const c of codings) {
    if (DECODERS[c] === undefined) {
      done(new GatewayError('GW_ERR_UNSUPPORTED_ENCODING', `${c}; supported: ${SUPPORTED_ENCODINGS.join(', ')}`))
      return
    }
  }
  let i = 0
  const step = (current: Buffer): void => {
    if (i === codings.length) {
      done(null, current)
      return
    }
    const coding = codings[i++]!
    DECODERS[coding]!(current, { maxOutputLength: limit }, (err, out) => {
      if (err === null) step(out)
      else if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') done(new GatewayError('GW_ERR_BODY_TOO_LARGE', String(limit)))
      else done(new GatewayError('GW_ERR_INVALID_BODY', `the ${coding} body could not be decoded (${err.message})`))
    })
  }
  step(body)
}
