/**
 * Upstream adapters by `kind`. A provider says how one call is sent to an upstream of its kind
 * (path, body, credential header) and how that upstream's answer is turned into the internal
 * shape (an OpenAI response) on its way to the client. The proxy asks the provider of the member
 * it dispatches to, so one call may fail over between kinds (vLLM first, a hosted API after).
 *
 * `openai` is the identity: the client's bytes, the OpenAI path, nothing wrapped, no cost.
 */
import type { ClientResponse } from '../protocols/client-response.ts'

import type { UpstreamKind } from './config.ts'
export { UPSTREAM_KINDS, type UpstreamKind } from './config.ts'

/** A request that arrived in a provider's own protocol, which that provider takes untouched. */
export interface NativeRequest {
  readonly protocol: 'anthropic'
  /** The client's path (`/v1/messages`, `/v1/messages/count_tokens`). */
  readonly path: string
  /** The client's own bytes. */
  readonly body: Buffer
  /** Told to pass the answer through when a native upstream answers. */
  passthrough(): void
}

/** The endpoint of a call, as providers see it (the proxy's Endpoint satisfies it). */
export interface ProviderEndpoint {
  /** `chat.completions`, `embeddings`, `messages`... */
  readonly name: string
  /** The OpenAI path, appended to the upstream's base path. */
  readonly path: string
}

/** What a provider reads from one call. */
export interface ProviderCall {
  readonly endpoint: ProviderEndpoint
  /** The internal (OpenAI) request bytes, model already resolved for the upstream. */
  readonly body: Buffer
  /** The upstream model id. */
  readonly model: string
  /** The model the client named (answers carry it). */
  readonly clientModel: string
  readonly native: NativeRequest | null
  /**
   * The gateway added `stream_options.include_usage` for its token limits: the client did not
   * ask for the usage chunk, so a translated stream must not send it (the limits read the
   * upstream's own usage).
   */
  readonly usageInjected?: boolean
}

export interface OutgoingRequest {
  /** Appended to the upstream's base path. */
  readonly path: string
  readonly body: Buffer
  /** Headers for this request alone (a SigV4 signature), added to the upstream's own; null for none. */
  readonly headers?: readonly string[] | null
}

export interface UpstreamSettings {
  /** `azure-openai`: the `api-version` query parameter. */
  readonly apiVersion?: string | undefined
  /** `azure-openai`: model id -> deployment name (default: the model id). */
  readonly deployments?: Readonly<Record<string, string>> | undefined
  /** `bedrock`: the AWS region (default: from the URL's host, else AWS_REGION). */
  readonly region?: string | undefined
  /** The upstream's name, for error messages. */
  readonly name?: string
  /** `host[:port]` of the upstream URL (signed by `bedrock`). */
  readonly host?: string
  /** The upstream URL's path prefix. */
  readonly basePath?: string
  /** The upstream's API key, when `apiKeyEnv` names one. */
  readonly apiKey?: string | undefined
  /** Where credentials are read from (AWS_* for `bedrock`). */
  readonly env?: NodeJS.ProcessEnv
}

export interface Provider {
  readonly kind: UpstreamKind
  /** Headers that carry the upstream's own credential, plus any fixed headers of the protocol. */
  headers(apiKey: string | undefined): string[]
  /** Resolves once the provider can send (credentials loaded); absent when it always can. */
  ready?(): Promise<void>
  /** How this call goes to this upstream; null sends the internal body to the endpoint's path. Throws a GatewayError when it cannot. */
  prepare(call: ProviderCall): OutgoingRequest | null
  /**
   * What the winning attempt writes to, given the client's response: null when the upstream
   * already answers in the internal shape.
   */
  respond(res: ClientResponse, call: ProviderCall): ClientResponse | null
}
