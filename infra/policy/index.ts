/** Policy pack entry: `pulumi preview --policy-pack infra/policy`. */
import { PolicyPack } from '@pulumi/policy'
import { POLICIES } from './policies.ts'

new PolicyPack('velox', { policies: [...POLICIES] })
