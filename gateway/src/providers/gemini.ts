/**
 * `kind: gemini`: Gemini through its OpenAI-compatible endpoint. The URL is that endpoint's base
 * (`https://generativelanguage.googleapis.com/v1beta/openai`), under which the OpenAI paths go
 * without their `/v1` (`/chat/completions`); the key is a Bearer token. Bodies and answers are
 * OpenAI-shaped.
 */
import type { Provider, ProviderCall } from './provider.ts'

export const geminiProvider: Provider = Object.freeze({
  kind: 'gemini' as const,
  headers: (apiKey: string | undefined) => (apiKey ? ['authorization', `Bearer ${apiKey}`] : []),
  prepare: (call: ProviderCall) => ({ path: call.endpoint.path.replace(/^\/v1\//, '/'), body: call.body }),
  respond: () => null,
})
