/**
 * The program imports the @pulumi/aws services it uses (`@pulumi/aws/ec2/index.js`, ...), never
 * the package root: the root's declarations pull in every AWS service (2,700 files, about half of
 * what the type check parsed), while the runtime cost is the same either way (the package loads
 * its services lazily).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { REPO_ROOT } from '../../infra/tools/stack-files.ts'

const ROOT_IMPORT = /from\s+['"]@pulumi\/aws['"]|import\(\s*['"]@pulumi\/aws['"]\s*\)|require\(\s*['"]@pulumi\/aws['"]\s*\)/

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.parentPath.includes('node_modules'))
    .map((e) => join(e.parentPath, e.name))
}

test('no infra or test file imports the @pulumi/aws package root', () => {
  assert.ok(ROOT_IMPORT.test(`import * as aws from '@pulumi/aws'`))
  assert.ok(!ROOT_IMPORT.test(`import * as ec2 from '@pulumi/aws/ec2/index.js'`))
  const files = [...tsFiles(join(REPO_ROOT, 'infra')), ...tsFiles(join(REPO_ROOT, 'test'))]
  assert.ok(files.some((f) => readFileSync(f, 'utf8').includes(`'@pulumi/aws/ec2/index.js'`)), 'positive control: the services are imported')
  assert.deepEqual(files.filter((f) => ROOT_IMPORT.test(readFileSync(f, 'utf8')) && !f.endsWith('aws-imports.test.ts')).map((f) => relative(REPO_ROOT, f)), [])
})
