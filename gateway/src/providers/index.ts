/** The provider for an upstream's `kind`, built once per upstream. */
import { anthropicProvider } from './anthropic.ts'
import { awsCredentials } from './aws-credentials.ts'
import { azureProvider } from './azure-openai.ts'
import { bedrockProvider, regionOfHost } from './bedrock.ts'
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
    case 'bedrock': return bedrock(settings)
    default: return openAIProvider
  }
}

function bedrock(settings: UpstreamSettings): Provider {
  const env = settings.env ?? process.env
  const host = settings.host ?? ''
  const region = settings.region ?? regionOfHost(host) ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION
  if (!region) {
    throw new Error(`upstream "${settings.name ?? ''}": kind bedrock needs a region: set region, use a bedrock-runtime.REGION.amazonaws.com url, or set AWS_REGION`)
  }
  // A Bedrock API key (apiKeyEnv) is a Bearer token and needs no signature.
  const credentials = settings.apiKey ? null : awsCredentials(env)
  return bedrockProvider({ region, host, basePath: settings.basePath ?? '', credentials })
}
