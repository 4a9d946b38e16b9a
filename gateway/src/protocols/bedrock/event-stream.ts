/**
 * AWS event-stream framing (`application/vnd.amazon.eventstream`), what Bedrock's ConverseStream
 * answers with: a sequence of binary messages, each
 *
 *   total length (u32) | headers length (u32) | prelude CRC32 | headers | payload | message CRC32
 *
 * with typed headers (`:message-type` event | exception, `:event-type`, `:exception-type`,
 * `:content-type`). Messages are decoded (and their checksums checked) by Smithy's codec, the one
 * the AWS SDKs use; this file only cuts the byte stream into whole messages, wherever the chunks
 * of the response split them.
 */
import { createRequire } from 'node:module'
import type { EventStreamCodec, MessageHeaders } from '@smithy/core/event-streams'

const toUtf8 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
const fromUtf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8')

let codecInstance: EventStreamCodec | null = null

/**
 * Smithy's codec, loaded on the first Bedrock message: a gateway without a Bedrock upstream never
 * loads @smithy/core (about 7 MB resident).
 */
function codec(): EventStreamCodec {
  if (codecInstance === null) {
    const smithy = createRequire(import.meta.url)('@smithy/core/event-streams') as typeof import('@smithy/core/event-streams')
    codecInstance = new smithy.EventStreamCodec(toUtf8, fromUtf8)
  }
  return codecInstance
}

/** The smallest message: prelude (12 bytes) and message CRC (4), no headers, no payload. */
const MIN_MESSAGE_BYTES = 16
/** Bedrock's events are a few hundred bytes; anything near this is a broken stream, not an event. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

export const EVENT_STREAM_CONTENT_TYPE = 'application/vnd.amazon.eventstream'

export interface StreamMessage {
  /** `event`, `exception` or `error`. */
  readonly messageType: string
  /** `:event-type` of an event, `:exception-type` of an exception, `:error-code` of an error. */
  readonly type: string
  /** The payload as text (JSON for Bedrock). */
  readonly payload: string
}

function stringHeader(headers: MessageHeaders, name: string): string {
  const h = headers[name]
  return h !== undefined && h.type === 'string' ? h.value : ''
}

/** Bytes in, whole messages out. Throws on a frame that is not an event-stream message. */
export class EventStreamReader {
  private pending: Buffer | null

  constructor() {
    this.pending = null
  }

  /** Bytes held for a message not complete yet. */
  get buffered(): number {
    return this.pending === null ? 0 : this.pending.length
  }

  push(chunk: Buffer): StreamMessage[] {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    this.pending = null
    const out: StreamMessage[] = []
    while (buf.length >= 4) {
      const total = buf.readUInt32BE(0)
      if (total < MIN_MESSAGE_BYTES || total > MAX_MESSAGE_BYTES) throw new Error(`not an event-stream message (length ${total})`)
      if (buf.length < total) break
      const message = codec().decode(buf.subarray(0, total))
      const messageType = stringHeader(message.headers, ':message-type')
      const type = messageType === 'exception' ? stringHeader(message.headers, ':exception-type') : messageType === 'error' ? stringHeader(message.headers, ':error-code') : stringHeader(message.headers, ':event-type')
      const payload = messageType === 'error' ? JSON.stringify({ message: stringHeader(message.headers, ':error-message') }) : toUtf8(message.body)
      out.push({ messageType, type, payload })
      buf = buf.subarray(total)
    }
    if (buf.length > 0) this.pending = Buffer.from(buf)
    return out
  }
}

/** One message of the framing, as Bedrock sends it (the simulator's side). */
export function encodeMessage(messageType: 'event' | 'exception', type: string, payload: string): Buffer {
  const headers: MessageHeaders = {
    ':message-type': { type: 'string', value: messageType },
    [messageType === 'event' ? ':event-type' : ':exception-type']: { type: 'string', value: type },
    ':content-type': { type: 'string', value: 'application/json' },
  }
  const bytes = codec().encode({ headers, body: fromUtf8(payload) })
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * The exception type when a response's first bytes are an exception message (a stream that
 * failed before its first event), read from the headers in place without decoding the message:
 * `throttlingException`, `modelStreamErrorException`..., '' when the type is not in this chunk;
 * null for an event (or anything else).
 */
export function exceptionAtStart(chunk: Buffer): string | null {
  if (chunk.length < 12) return null
  const headersEnd = Math.min(12 + chunk.readUInt32BE(4), chunk.length)
  let exception = false
  let type = ''
  let i = 12
  while (i < headersEnd) {
    const nameLength = chunk[i]!
    const name = chunk.toString('latin1', i + 1, i + 1 + nameLength)
    i += 1 + nameLength
    if (i + 3 > chunk.length) break
    // Bedrock's headers are strings; a header of another type ends the walk.
    if (chunk[i] !== 7) break
    const valueLength = chunk.readUInt16BE(i + 1)
    const value = chunk.toString('latin1', i + 3, Math.min(i + 3 + valueLength, chunk.length))
    if (name === ':message-type') {
      if (value !== 'exception' && value !== 'error') return null
      exception = true
    } else if (name === ':exception-type' || name === ':error-code') {
      type = value
    }
    i += 3 + valueLength
  }
  return exception ? type : null
}
