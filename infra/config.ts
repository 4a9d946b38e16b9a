/**
 * Reads the stack's config once from the Pulumi runtime and validates it (lib/stack-config.ts).
 * Throws before any resource is declared, with every bad key named.
 */
import * as pulumi from '@pulumi/pulumi'
import { parseStackConfig, type StackConfig } from './lib/stack-config.ts'

export interface LoadedConfig {
  readonly config: StackConfig
  /** The cache AUTH token as a secret Output, when `velox:cacheAuthToken` is set. */
  readonly cacheAuthToken: pulumi.Output<string> | undefined
  /** `velox:hfToken` (secret): the Hugging Face token vLLM downloads gated weights with. */
  readonly hfToken: pulumi.Output<string> | undefined
  /** `velox:peerApiKey` (secret): the key regions of a stage present to each other. */
  readonly peerApiKey: pulumi.Output<string> | undefined
}

export function loadStackConfig(): LoadedConfig {
  const config = parseStackConfig(pulumi.getStack(), pulumi.runtime.allConfig())
  const velox = new pulumi.Config('velox')
  const token = config.hasCacheAuthToken ? velox.requireSecret('cacheAuthToken') : undefined
  const hfToken = config.hasHfToken ? velox.requireSecret('hfToken') : undefined
  const peerApiKey = config.hasPeerApiKey ? velox.requireSecret('peerApiKey') : undefined
  return { config, cacheAuthToken: token, hfToken, peerApiKey }
}
