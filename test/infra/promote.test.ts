import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, matchesGlob, relative, resolve } from 'node:path'
import { parse } from 'yaml'
import { healthGate } from '../../infra/promote/health.ts'
import { pinImage, releaseFromOutputs, setGatewayImage } from '../../infra/promote/release.ts'
import { affectedStacks, promotionPlan } from '../../infra/promote/stacks.ts'
import { parseStackConfig } from '../../infra/lib/stack-config.ts'
import { REPO_ROOT, readStackConfig, shippedStacks, stackFile } from '../../infra/tools/stack-files.ts'

const STACKS = ['dev-us-east-1', 'staging-us-east-1', 'prod-us-east-1', 'prod-eu-west-1', 'prod-ap-northeast-1']
const DIGEST = 'sha256:' + 'b'.repeat(64)

test('affected stacks: a region file hits its stack, the program hits all, docs none', () => {
  assert.deepEqual(affectedStacks(['regions/Pulumi.prod-eu-west-1.yaml', 'docs/deploy.md'], STACKS), ['prod-eu-west-1'])
  assert.deepEqual(affectedStacks(['infra/components/cache.ts'], STACKS), [...STACKS].sort())
  assert.deepEqual(affectedStacks(['gateway/src/config/schema.ts'], STACKS).length, 5)
  assert.deepEqual(affectedStacks(['package-lock.json'], STACKS).length, 5)
  assert.deepEqual(affectedStacks(['docs/deploy.md', 'test/infra/lib.test.ts', 'gateway/src/server.ts', 'regions/Pulumi.qa-x.yaml'], STACKS), [])
})

test('promotion goes dev -> staging -> prod one region at a time, us-east-1 first', () => {
  assert.deepEqual(promotionPlan(STACKS), [
    { stack: 'staging-us-east-1', from: 'dev-us-east-1' },
    { stack: 'prod-us-east-1', from: 'staging-us-east-1' },
    { stack: 'prod-eu-west-1', from: 'staging-us-east-1' },
    { stack: 'prod-ap-northeast-1', from: 'staging-us-east-1' },
  ])
  assert.deepEqual(promotionPlan(shippedStacks()).map((s) => s.stack), promotionPlan(STACKS).map((s) => s.stack))
  assert.throws(() => promotionPlan(['prod-us-east-1']), /no dev stack/)
})

test('the release is the digest the previous stage runs; tags are refused', () => {
  const image = `ghcr.io/velox-ai/gateway@${DIGEST}`
  assert.deepEqual(releaseFromOutputs({ gatewayImage: image, stage: 'dev', region: 'us-east-1' }), { image, digest: DIGEST, stage: 'dev', region: 'us-east-1' })
  assert.throws(() => releaseFromOutputs({ gatewayImage: 'ghcr.io/velox-ai/gateway:main' }), /not pinned by digest/)
  assert.throws(() => releaseFromOutputs({}), /no gatewayImage/)
  assert.equal(pinImage('ghcr.io/velox-ai/gateway:main', DIGEST), image)
  assert.equal(pinImage('localhost:5000/gw:1.2', DIGEST), `localhost:5000/gw@${DIGEST}`)
  assert.throws(() => pinImage('x:1', 'md5:abc'), /not a sha256 digest/)
})

test('setting the image keeps comments and every other key, and the stack still validates', () => {
  for (const stack of shippedStacks()) {
    const text = readFileSync(stackFile(stack), 'utf8')
    const image = `ghcr.io/velox-ai/gateway@${DIGEST}`
    const updated = setGatewayImage(text, image)
    const before = parse(text).config, after = parse(updated).config
    assert.equal(after['velox:gatewayImage'], image)
    assert.deepEqual({ ...after, 'velox:gatewayImage': null }, { ...before, 'velox:gatewayImage': null })
    for (const line of text.split('\n').filter((l) => l.trim().startsWith('#'))) assert.ok(updated.includes(line), `keeps comment ${line}`)
    const raw = Object.fromEntries(Object.entries(after as Record<string, unknown>).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]))
    parseStackConfig(stack, raw as Record<string, string>)
  }
})

let server: Server
let url = ''
let mode: 'ok' | 'fail' | 'flap' = 'ok'
let hits = 0
before(async () => {
  server = createServer((req, res) => {
    hits++
    const ok = req.url === '/readyz' && (mode === 'ok' || (mode === 'flap' && hits % 2 === 0))
    res.writeHead(ok ? 200 : 503).end(ok ? 'ready' : 'not ready')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(() => new Promise<void>((r) => server.close(() => r())))

test('health gate: passes on a streak of 200s from /readyz, fails on 503s and on flapping', async () => {
  mode = 'ok'
  const ok = await healthGate({ url, successes: 3, deadlineMs: 20000, intervalMs: 5, timeoutMs: 5000 })
  assert.deepEqual([ok.healthy, ok.probes, ok.failures], [true, 3, 0])
  mode = 'fail'
  const bad = await healthGate({ url, successes: 3, deadlineMs: 150, intervalMs: 10, timeoutMs: 500 })
  assert.equal(bad.healthy, false)
  assert.equal(bad.lastError, 'HTTP 503')
  // Every probe failed (on a loaded machine the deadline may leave room for one only).
  assert.ok(bad.failures >= 1 && bad.failures === bad.probes, `${bad.failures} failures in ${bad.probes} probes`)
  mode = 'flap'
  const flap = await healthGate({ url, successes: 2, deadlineMs: 200, intervalMs: 5, timeoutMs: 500 })
  assert.equal(flap.healthy, false, 'never two in a row')
  const down = await healthGate({ url: 'http://127.0.0.1:1', successes: 1, deadlineMs: 100, intervalMs: 10, timeoutMs: 100 })
  assert.equal(down.healthy, false)
  assert.match(down.lastError ?? '', /fetch failed|ECONNREFUSED|TypeError/)
})

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'infra/promote/cli.ts'), ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout }))
  })
}

test('cli: set-image on a copy of regions/, release from outputs, health gate exit code, GITHUB_OUTPUT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'velox-promote-'))
  try {
    for (const s of shippedStacks()) copyFileSync(stackFile(s), stackFile(s, dir))
    const image = `ghcr.io/velox-ai/gateway@${DIGEST}`
    assert.equal((await cli(['set-image', 'staging-us-east-1', image, '--dir', dir])).code, 0)
    assert.equal(readStackConfig('staging-us-east-1', dir)['velox:gatewayImage'], image)
    const outputs = join(dir, 'out.json')
    writeFileSync(outputs, JSON.stringify({ gatewayImage: image, stage: 'staging', region: 'us-east-1' }))
    const ghOut = join(dir, 'gh-output')
    const rel = await cli(['release', '--outputs', outputs], { GITHUB_OUTPUT: ghOut })
    assert.equal(rel.stdout.trim(), image)
    assert.equal(readFileSync(ghOut, 'utf8'), `image=${image}\n`)
    const mismatch = await cli(['release', '--outputs', outputs, '--expect', `ghcr.io/velox-ai/gateway@sha256:${'c'.repeat(64)}`])
    assert.notEqual(mismatch.code, 0, 'a different image stops the promotion')
    assert.equal(JSON.parse((await cli(['plan', '--dir', dir])).stdout)[0].stack, 'staging-us-east-1')
    mode = 'ok'
    assert.equal((await cli(['health-gate', '--url', url, '--successes', '2', '--deadline-s', '2', '--interval-s', '0'])).code, 0)
    mode = 'fail'
    const failed = await cli(['health-gate', '--url', url, '--successes', '2', '--deadline-s', '0.3', '--interval-s', '0.05'])
    assert.equal(failed.code, 1)
    assert.equal(failed.stdout.trim(), 'false')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('cli: set-image moves an ECR image to the stack region\'s replica; release --expect compares digests', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'velox-promote-'))
  try {
    for (const s of shippedStacks()) copyFileSync(stackFile(s), stackFile(s, dir))
    const image = `123456789012.dkr.ecr.us-east-1.amazonaws.com/velox/prod/gateway@${DIGEST}`
    const set = await cli(['set-image', 'prod-ap-northeast-1', image, '--dir', dir])
    assert.equal(set.code, 0)
    const local = `123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/velox/prod/gateway@${DIGEST}`
    assert.equal(set.stdout.trim(), local)
    assert.equal(readStackConfig('prod-ap-northeast-1', dir)['velox:gatewayImage'], local)
    const outputs = join(dir, 'out.json')
    writeFileSync(outputs, JSON.stringify({ gatewayImage: local }))
    assert.equal((await cli(['release', '--outputs', outputs, '--expect', image])).code, 0, 'same digest, other region')
    assert.notEqual((await cli(['release', '--outputs', outputs, '--expect', image.replace(DIGEST, `sha256:${'d'.repeat(64)}`)])).code, 0)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('every file the gateway config schema or the infra program is made of triggers a preview of every stack', () => {
  // Each entry and everything it imports, transitively (relative imports only, static or `import()`).
  const files = new Set<string>()
  const visit = (file: string): void => {
    if (files.has(file)) return
    files.add(file)
    const source = readFileSync(file, 'utf8')
    for (const m of source.matchAll(/\b(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) visit(resolve(dirname(file), m[1]!))
  }
  visit(join(REPO_ROOT, 'gateway/src/config/schema.ts'))
  // The program Pulumi runs: Pulumi.yaml's `main`, a folder meaning its index.ts.
  const main = (parse(readFileSync(join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as { main: string }).main
  visit(join(REPO_ROOT, main.endsWith('.ts') ? main : join(main, 'index.ts')))
  const closure = [...files].map((f) => relative(REPO_ROOT, f)).sort()
  assert.ok(closure.includes('gateway/src/routing/config.ts'), closure.join(', '))
  assert.ok(closure.includes('infra/region.ts'), 'the dynamic import of the region program is followed')
  const prPaths = (parse(readFileSync(join(REPO_ROOT, '.github/workflows/infra-pr.yml'), 'utf8')) as { on: { pull_request: { paths: string[] } } }).on.pull_request.paths
  for (const file of [...closure, 'gateway/package.json']) {
    assert.equal(affectedStacks([file], STACKS).length, STACKS.length, file)
    assert.ok(prPaths.some((glob) => matchesGlob(file, glob)), `infra-pr.yml paths miss ${file}`)
  }
  // Positive control: gateway code outside both previews nothing.
  assert.deepEqual(affectedStacks(['gateway/src/routing/router.ts', 'gateway/src/proxy/call.ts'], STACKS), [])
})
