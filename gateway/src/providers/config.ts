/** The wire protocols an upstream can speak (`upstreams[].kind`); see docs/protocols.md. */
export const UPSTREAM_KINDS = ['openai', 'anthropic', 'azure-openai', 'gemini', 'bedrock'] as const
export type UpstreamKind = (typeof UPSTREAM_KINDS)[number]
