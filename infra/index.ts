/**
 * The program's entry point. One Pulumi project, two kinds of stack:
 *   `<stage>-global`  the stage's Global Accelerator and image repository (infra/global.ts)
 *   `<stage>-<region>` one region (infra/region.ts)
 * The stack name decides which program runs; its outputs are this module's default export.
 */
import * as pulumi from '@pulumi/pulumi'
import { isGlobalStack } from './lib/global-config.ts'

const outputs: Record<string, unknown> = isGlobalStack(pulumi.getStack())
  ? (await import('./global.ts')).globalProgram()
  : { ...(await import('./region.ts')) }

export default outputs
