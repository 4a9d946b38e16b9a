/** `kind: openai` (the default): OpenAI-compatible servers (vLLM, SGLang, TGI, OpenAI itself). */
import type { Provider } from './provider.ts'

export const openAIProvider: Provider = Object.freeze({
  kind: 'openai' as const,
  headers: (apiKey: string | undefined) => (apiKey ? ['authorization', `Bearer ${apiKey}`] : []),
  prepare: () => null,
  respond: () => null,
})
