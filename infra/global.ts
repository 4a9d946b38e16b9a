/**
 * The global stack of a stage, `<stage>-global`: the Global Accelerator (static anycast addresses,
 * one listener, `<domain>` aliased to it) and the gateway image repository with its replication
 * to every region of the stage. Regional stacks read its outputs through a StackReference
 * (velox:globalStack) and add their own endpoint group.
 */
import { getCallerIdentityOutput } from '@pulumi/aws/getCallerIdentity.js'
import { Provider } from '@pulumi/aws/provider.js'
import type { Region } from '@pulumi/aws/types/enums/index.js'
import * as pulumi from '@pulumi/pulumi'
import { GlobalAccelerator } from './components/accelerator.ts'
import { ImageRegistry } from './components/registry.ts'
import { ACCELERATOR_API_REGION, parseGlobalConfig } from './lib/global-config.ts'
import { baseTags } from './lib/naming.ts'
import { regionalImage } from './promote/release.ts'

export function globalProgram() {
  const cfg = parseGlobalConfig(pulumi.getStack(), pulumi.runtime.allConfig())
  const name = `velox-${cfg.stage}`
  const tags = { ...baseTags({ stage: cfg.stage, region: 'global' }, cfg.tags) }
  const home = new Provider(`aws-${cfg.homeRegion}`, { region: cfg.homeRegion as Region, defaultTags: { tags } })
  const acceleratorApi = new Provider(`aws-${ACCELERATOR_API_REGION}`, { region: ACCELERATOR_API_REGION, defaultTags: { tags } })

  const account = getCallerIdentityOutput({}, { provider: home })
  const registry = new ImageRegistry(`${name}-images`, {
    repositoryName: cfg.repositoryName,
    replicaRegions: cfg.regions.filter((r) => r !== cfg.homeRegion),
    accountId: account.accountId,
    untaggedDays: cfg.untaggedImageDays,
  }, { providers: [home] })
  const accelerator = !cfg.accelerator ? undefined : new GlobalAccelerator(`${name}-edge`, {
    domain: cfg.domain,
    hostedZoneId: cfg.hostedZoneId,
    port: cfg.tls ? 443 : 80,
  }, { providers: [acceleratorApi] })

  return {
    stage: cfg.stage,
    listenerArn: accelerator?.listenerArn,
    acceleratorDnsName: accelerator?.dnsName,
    staticIps: accelerator?.staticIps,
    repositoryUrl: registry.repositoryUrl,
    /** Repository URL per region (replicas keep the name): what regional stacks' images start with. */
    regionalRepositoryUrls: registry.repositoryUrl.apply((url) => Object.fromEntries(cfg.regions.map((r) => [r, regionalImage(url, r)]))),
  }
}
