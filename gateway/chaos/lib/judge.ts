/** How one answer is judged: OpenAI-shaped or not, complete or visibly failed. */
import { gatewayCode, isOpenAIError, type WireResponse } from './wire.ts'

export type Verdict =
  /** A complete success: JSON that parses, or a stream that ended with its end marker. */
  | 'ok'
  /** An OpenAI-shaped error answer (status >= 400). */
  | 'error'
  /** A 200 stream that ended with an OpenAI-shaped error event: a visible mid-stream failure. */
  | 'stream-error'
  /** A non-streamed 200 body cut short by the connection closing: a visible mid-body failure. */
  | 'cut'
  /** Anything else: not an answer a stock OpenAI client can make sense of. */
  | 'bad'

export interface Judged {
  verdict: Verdict
  why: string
  /** The gateway made this 5xx itself (GW_ERR_*), or a 5xx carries no upstream mark. */
  gateway5xx: boolean
}

export function judgeResponse(res: WireResponse, head = false): Judged {
  const gateway5xx = res.status >= 500 && (gatewayCode(res.body) !== null || !res.headers.has('x-velox-upstream'))
  if (head) return { verdict: res.status >= 400 ? 'error' : 'ok', why: 'HEAD', gateway5xx }
  if (res.status >= 400) {
    return isOpenAIError(res.body)
      ? { verdict: 'error', why: gatewayCode(res.body) ?? 'upstream error', gateway5xx }
      : { verdict: 'bad', why: `${res.status} not OpenAI-shaped: ${JSON.stringify(res.body.toString('utf8').slice(0, 80))}`, gateway5xx }
  }
  const type = res.headers.get('content-type')?.[0] ?? ''
  if (type.startsWith('text/event-stream')) {
    const text = res.body.toString('utf8').trimEnd()
    if (text.endsWith('data: [DONE]') || /event: response\.(completed|incomplete)\ndata: [^\n]*$/.test(text)) return { verdict: 'ok', why: 'stream', gateway5xx }
    const last = text.slice(text.lastIndexOf('\n') + 1)
    if (last.startsWith('data: {"error"') && isOpenAIError(Buffer.from(last.slice(6)))) return { verdict: 'stream-error', why: gatewayCode(Buffer.from(last.slice(6))) ?? 'upstream error event', gateway5xx }
    return { verdict: 'bad', why: `stream without an end (${res.truncated ? 'cut' : 'closed'})`, gateway5xx }
  }
  if (res.truncated) return { verdict: 'cut', why: 'body cut short', gateway5xx }
  if (type.startsWith('application/json')) {
    try {
      JSON.parse(res.body.toString('utf8'))
    } catch {
      return { verdict: 'bad', why: '200 with unparseable JSON', gateway5xx }
    }
  }
  return { verdict: 'ok', why: String(res.status), gateway5xx }
}
