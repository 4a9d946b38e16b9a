/**
 * `kind: azure-openai`: Azure OpenAI deployments. The URL is the resource
 * (`https://NAME.openai.azure.com`); a call goes to
 * `/openai/deployments/{deployment}/chat/completions?api-version=...`, the deployment named by
 * `deployments[model]` (default: the model id itself), with the key in `api-key`. Bodies and
 * answers are OpenAI-shaped.
 */
import { GatewayError } from '../errors.ts'
import type { OutgoingRequest, Provider, ProviderCall, UpstreamSettings } from './provider.ts'

/** The generally available data-plane version the gateway speaks by default. */
export const DEFAULT_AZURE_API_VERSION = '2024-10-21'

const ROUTES: Record<string, string> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  messages: '/chat/completions',
}

export function azureProvider(settings: UpstreamSettings): Provider {
  const version = encodeURIComponent(settings.apiVersion ?? DEFAULT_AZURE_API_VERSION)
  const deployments = settings.deployments ?? {}
  // Paths per model, built on first use and kept: no string building per request after that.
  const paths = new Map<string, string>()
  return Object.freeze({
    kind: 'azure-openai' as const,
    headers: (apiKey: string | undefined) => (apiKey ? ['api-key', apiKey] : []),
    prepare(call: ProviderCall): OutgoingRequest {
      const route = ROUTES[call.endpoint.name]
      if (route === undefined) throw new GatewayError('GW_ERR_UNSUPPORTED_CONTENT', `${call.endpoint.name} on an azure-openai upstream`)
      const key = call.endpoint.name + '\u0000' + call.model
      let path = paths.get(key)
      if (path === undefined) {
        path = `/openai/deployments/${encodeURIComponent(deployments[call.model] ?? call.model)}${route}?api-version=${version}`
        if (paths.size < 1024) paths.set(key, path)
      }
      return { path, body: call.body }
    },
    respond: () => null,
  })
}
