/**
 * A real OTLP/HTTP receiver for http/json exports on 127.0.0.1: what the trace tests read back.
 * It takes only `POST /v1/traces` with a JSON content type (anything else gets 404 or 415, so an
 * exporter sending elsewhere or in another encoding loses its spans and the test sees none).
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface OtlpValue { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean; arrayValue?: { values: OtlpValue[] } }
export interface OtlpAttribute { key: string; value: OtlpValue }
export interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: OtlpAttribute[]
  events?: Array<{ name: string; attributes: OtlpAttribute[] }>
  status?: { code?: number }
}

export interface OtlpReceiver {
  /** The base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string
  /** Every span received, in arrival order. */
  readonly spans: OtlpSpan[]
  /** Each export's resource attributes, one entry per resourceSpans. */
  readonly resources: Array<Record<string, unknown>>
  close(): void
}

/** An attribute's value: integers as numbers, arrays as arrays. */
export const otlpValue = (v: OtlpValue): unknown =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue ?? v.arrayValue?.values.map(otlpValue)

/** Each attribute's value by key. */
export const otlpAttributes = (holder: { attributes: OtlpAttribute[] }): Record<string, unknown> =>
  Object.fromEntries(holder.attributes.map((a) => [a.key, otlpValue(a.value)]))

export async function startOtlpJsonReceiver(): Promise<OtlpReceiver> {
  const spans: OtlpSpan[] = []
  const resources: Array<Record<string, unknown>> = []
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    if (req.method !== 'POST' || req.url !== '/v1/traces') return res.writeHead(404).end()
    if (!/application\/json/.test(req.headers['content-type'] ?? '')) return res.writeHead(415).end()
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: Array<{ resource?: { attributes: OtlpAttribute[] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
    for (const rs of body.resourceSpans) {
      resources.push(otlpAttributes(rs.resource ?? { attributes: [] }))
      for (const ss of rs.scopeSpans) spans.push(...ss.spans)
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, resources, close: () => server.close() }
}
