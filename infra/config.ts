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
}

export function loadStackConfig(): LoadedConfig {
  const config = parseStackConfig(pulumi.getStack(), pulumi.runtime.allConfig())
  const token = config.hasCacheAuthToken ? new pulumi.Config('velox').requireSecret('cacheAuthToken') : undefined
  return { config, cacheAuthToken: token }
}
