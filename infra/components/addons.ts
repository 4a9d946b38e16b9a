import * as eks from '@pulumi/aws/eks/index.js'
import * as pulumi from '@pulumi/pulumi'

export interface EksAddonsArgs {
  readonly clusterName: pulumi.Input<string>
  /** The cluster's minor version: each add-on's version is resolved for it. */
  readonly kubernetesVersion: string
  /** EKS add-on names (`aws eks describe-addon-versions`). */
  readonly addons: readonly string[]
}

/**
 * EKS-managed add-ons at the newest version AWS publishes for the cluster version, resolved at
 * deploy time with `eks.getAddonVersion` (DescribeAddonVersions) rather than hard-coded, and
 * pinned in state so a later `pulumi up` shows any version move as a diff. The program owns their
 * configuration: conflicting fields are overwritten on create and update.
 */
export class EksAddons extends pulumi.ComponentResource {
  /** Add-on name -> the version deployed. */
  readonly versions: Record<string, pulumi.Output<string>>

  constructor(name: string, args: EksAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:cluster:EksAddons', name, {}, opts)
    this.versions = {}
    for (const addonName of args.addons) {
      const version = eks.getAddonVersionOutput({ addonName, kubernetesVersion: args.kubernetesVersion, mostRecent: true }, { parent: this })
      const addon = new eks.Addon(`${name}-${addonName}`, {
        clusterName: args.clusterName,
        addonName,
        addonVersion: version.version,
        resolveConflictsOnCreate: 'OVERWRITE',
        resolveConflictsOnUpdate: 'OVERWRITE',
      }, { parent: this })
      this.versions[addonName] = addon.addonVersion.apply((v) => {
        if (!v) throw new Error(`EKS add-on ${addonName} has no version for Kubernetes ${args.kubernetesVersion}`)
        return v
      })
    }
    this.registerOutputs({ versions: this.versions })
  }
}
