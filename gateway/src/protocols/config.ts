/** Client headers never forwarded upstream (`server.forwardHeaders` refuses them) whatever the config says: credentials and hop or framing headers. */
export const NEVER_FORWARDED: ReadonlySet<string> = new Set([
  'authorization', 'x-api-key', 'cookie', 'proxy-authorization', 'host', 'content-length', 'content-type', 'content-encoding',
  'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'x-velox-hop',
])
