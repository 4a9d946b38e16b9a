import * as ecr from '@pulumi/aws/ecr/index.js'
import * as pulumi from '@pulumi/pulumi'

export interface ImageRegistryArgs {
  /** Repository name, e.g. velox/gateway (the same name exists in every replica region). */
  readonly repositoryName: string
  /** The account's home region (where CI pushes) is the provider's; images replicate to these. */
  readonly replicaRegions: readonly string[]
  /** The account id (replication destinations name a registry). */
  readonly accountId: pulumi.Input<string>
  /** Untagged images older than this are expired; promoted digests are kept by tag. */
  readonly untaggedDays: number
}

/** ECR lifecycle: expire untagged images after `days`; everything CI tagged stays. */
export function lifecyclePolicy(days: number): string {
  return JSON.stringify({
    rules: [{
      rulePriority: 1,
      description: `expire untagged images after ${days} days`,
      selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: days },
      action: { type: 'expire' },
    }],
  })
}

/**
 * The gateway image repository: immutable tags (a tag names one digest forever), scan on push,
 * and registry replication to every region the stage runs in, so each region's nodes pull from
 * their own region's ECR through the node role's AmazonEC2ContainerRegistryReadOnly (no pull
 * secret, no cross-region pull on a node's boot path).
 */
export class ImageRegistry extends pulumi.ComponentResource {
  readonly repositoryUrl: pulumi.Output<string>
  readonly repositoryArn: pulumi.Output<string>
  readonly repositoryName: pulumi.Output<string>

  constructor(name: string, args: ImageRegistryArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:registry:ImageRegistry', name, {}, opts)
    const parent = { parent: this }
    const repo = new ecr.Repository(`${name}-repo`, {
      name: args.repositoryName,
      imageTagMutability: 'IMMUTABLE',
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfigurations: [{ encryptionType: 'AES256' }],
    }, parent)
    new ecr.LifecyclePolicy(`${name}-lifecycle`, { repository: repo.name, policy: lifecyclePolicy(args.untaggedDays) }, parent)
    if (args.replicaRegions.length > 0) {
      // Registry-wide setting (one per account and region): replicate only this repository prefix.
      new ecr.ReplicationConfiguration(`${name}-replication`, {
        replicationConfiguration: {
          rules: [{
            destinations: args.replicaRegions.map((region) => ({ region, registryId: args.accountId })),
            repositoryFilters: [{ filter: args.repositoryName, filterType: 'PREFIX_MATCH' }],
          }],
        },
      }, parent)
    }
    this.repositoryUrl = repo.repositoryUrl
    this.repositoryArn = repo.arn
    this.repositoryName = repo.name
    this.registerOutputs({ repositoryUrl: this.repositoryUrl, repositoryArn: this.repositoryArn })
  }
}
