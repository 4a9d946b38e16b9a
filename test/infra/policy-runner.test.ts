/**
 * The policy pack under Pulumi's own policy runner, started the way the nodejs language host
 * starts it for `pulumi preview --policy-pack infra/policy`: `node <@pulumi/pulumi/cmd/run-policy-pack>
 * <engine-address> <pack dir>` with the pack directory as working directory. The runner registers
 * its bundled ts-node, require()s the pack, and prints the port of the Analyzer gRPC server it
 * serves; the test then speaks that gRPC service with @pulumi/pulumi's generated client and messages.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { once } from 'node:events'
import { REPO_ROOT } from '../../infra/tools/stack-files.ts'
import { POLICIES } from '../../infra/policy/policies.ts'

const PACK_DIR = join(REPO_ROOT, 'infra', 'policy')
// Resolved from the pack directory, as the language host's locateModule does.
const require = createRequire(join(PACK_DIR, 'package.json'))
const RUNNER = require.resolve('@pulumi/pulumi/cmd/run-policy-pack')
const PROTO_DIR = join(RUNNER, '..', '..', '..', 'proto')
const fromPulumi = createRequire(join(PROTO_DIR, 'analyzer_pb.js'))

/* eslint-disable @typescript-eslint/no-explicit-any */
const grpc = fromPulumi('@grpc/grpc-js') as typeof import('@grpc/grpc-js')
const analyzerPb = fromPulumi('./analyzer_pb.js') as any
const { AnalyzerClient } = fromPulumi('./analyzer_grpc_pb.js') as any
const { Struct } = fromPulumi('google-protobuf/google/protobuf/struct_pb.js') as any
const { Empty } = fromPulumi('google-protobuf/google/protobuf/empty_pb.js') as any

interface Runner { readonly child: ChildProcess; readonly port: number; readonly stderr: () => string }

let started: ChildProcess | null = null

async function startRunner(): Promise<Runner> {
  const child = started = spawn(process.execPath, [RUNNER, '127.0.0.1:1', PACK_DIR], {
    cwd: PACK_DIR,
    env: { PATH: process.env['PATH'] ?? '', PULUMI_NODEJS_STACK: 'prod-us-east-1', PULUMI_NODEJS_PROJECT: 'velox' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  let out = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d })
  child.stdout!.setEncoding('utf8')
  const port = await new Promise<number>((resolve, reject) => {
    // A runner that never printed its port is killed: left running, it would keep this file's process alive.
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`runner printed no port within 90 s
${err}`))
    }, 90_000)
    child.stdout!.on('data', (d: string) => {
      out += d
      const line = /^(\d+)\r?\n/.exec(out)
      if (line) { clearTimeout(timer); resolve(Number(line[1])) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`runner exited with ${code} before printing its port:\n${err}${out}`)) })
  })
  return { child, port, stderr: () => err }
}

const runner = startRunner()
// Stopped whether or not it ever printed its port.
after(async () => {
  await runner.catch(() => undefined)
  if (started && started.exitCode === null && started.signalCode === null) { started.kill('SIGTERM'); await once(started, 'exit') }
})

function call<T>(client: any, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => client[method](request, (e: Error | null, res: T) => (e ? reject(e) : resolve(res))))
}

async function client(): Promise<any> {
  const { port } = await runner
  return new AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
}

function analyzeRequest(type: string, props: Record<string, unknown>, stack = 'prod-us-east-1'): unknown {
  const req = new analyzerPb.AnalyzeRequest()
  req.setType(type)
  req.setName('r')
  req.setUrn(`urn:pulumi:${stack}::velox::${type}::r`)
  req.setProperties(Struct.fromJavaScript(props))
  // The CLI always sends the resource options; the pack refuses a request without them.
  req.setOptions(new analyzerPb.AnalyzerResourceOptions())
  return req
}

interface Diagnostic { policyName: string; policyPackName: string; message: string; enforcementLevel: number }
async function analyze(type: string, props: Record<string, unknown>, stack?: string): Promise<Diagnostic[]> {
  const res = await call<any>(await client(), 'analyze', analyzeRequest(type, props, stack))
  return res.getDiagnosticsList().map((d: any) => ({ policyName: d.getPolicyname(), policyPackName: d.getPolicypackname(), message: d.getMessage(), enforcementLevel: d.getEnforcementlevel() }))
}

test('the real runner loads the pack and reports every policy, mandatory', async () => {
  const info = await call<any>(await client(), 'getAnalyzerInfo', new Empty())
  assert.equal(info.getName(), 'velox')
  assert.equal(info.getVersion(), '0.1.0')
  const policies = info.getPoliciesList().map((p: any) => [p.getName(), p.getEnforcementlevel()])
  // EnforcementLevel.MANDATORY is 1 in analyzer.proto.
  assert.deepEqual(policies, POLICIES.map((p) => [p.name, analyzerPb.EnforcementLevel.MANDATORY]))
  assert.equal(analyzerPb.EnforcementLevel.MANDATORY, 1)
})

test('Analyze through the runner: violations come back as mandatory diagnostics, clean resources as none', async () => {
  const lt = 'aws:ec2/launchTemplate:LaunchTemplate'
  const bad = await analyze(lt, { metadataOptions: { httpTokens: 'optional' }, keyName: 'ops' })
  assert.deepEqual(bad.map((d) => d.policyName).sort(), ['imdsv2-required', 'no-public-ssh'])
  assert.ok(bad.every((d) => d.policyPackName === 'velox' && d.enforcementLevel === 1))
  assert.match(bad.find((d) => d.policyName === 'imdsv2-required')!.message, /httpTokens must be "required"/)
  assert.deepEqual(await analyze(lt, { metadataOptions: { httpTokens: 'required' } }), [])

  // The stage is read from the URN, as in a real stack.
  const rg = 'aws:elasticache/replicationGroup:ReplicationGroup'
  const single = { transitEncryptionEnabled: true, transitEncryptionMode: 'required', atRestEncryptionEnabled: true, numCacheClusters: 1 }
  assert.deepEqual(await analyze(rg, single, 'dev-us-east-1'), [])
  assert.equal((await analyze(rg, single, 'prod-us-east-1')).filter((d) => d.policyName === 'prod-multi-az').length, 3)

  // A policy that parses YAML: the runner resolves the pack's own imports too.
  const cm = { data: { 'gateway.yaml': 'simulator:\n  enabled: false\n' } }
  assert.deepEqual((await analyze('kubernetes:core/v1:ConfigMap', cm, 'prod-us-east-1')).map((d) => d.policyName), ['gateway-auth-outside-dev'])
})
