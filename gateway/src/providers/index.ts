/** The provider for an upstream's `kind`, built once per upstream. */
import { anthropicProvider } from './anthropic.ts'
import { azureProvider } from './azure-openai.ts'
import { geminiProvider } from './gemini.ts'
import { openAIProvider } from './openai.ts'
import type { Provider, UpstreamKind, UpstreamSettings } from './provider.ts'

export type { NativeRequest, OutgoingRequest, Provider, ProviderCall, UpstreamKind } from './provider.ts'
export { UPSTREAM_KINDS } from './provider.ts'

export function providerFor(kind: UpstreamKind, settings: UpstreamSettings = {}): Provider {
  switch (kind) {
    case 'anthropic': return anthropicProvider
    case 'azure-openai': return azureProvider(settings)
    case 'gemini': return geminiProvider
    default: return openAIProvider
  }
}
