// Policy pack entry: `pulumi preview --policy-pack infra/policy`.
//
// Plain JavaScript on purpose. Pulumi's policy runner (@pulumi/pulumi/cmd/run-policy-pack) always
// registers its bundled ts-node and type-checks every `.ts` file it require()s, which rejects the
// repository's `.ts` import specifiers (TS5097). This file is not TypeScript, so ts-node leaves it
// alone; the runner require()s it as an ES module (package.json "type": "module"), and Node itself
// strips the types of policies.ts and everything it imports, exactly as it does for the program.
// test/infra/policy-runner.test.ts starts the real runner on this directory.
import { PolicyPack } from '@pulumi/policy'
import { POLICIES } from './policies.ts'

new PolicyPack('velox', { policies: [...POLICIES] })
