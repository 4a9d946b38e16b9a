import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { test } from 'node:test'
import { RequestIds, requestId } from '../../../gateway/src/telemetry/request-id.ts'

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

function req(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage
}

test('generated ids are UUID-shaped, distinct, and count up under one random prefix', () => {
  const ids = new RequestIds()
  const seen = new Set<string>()
  for (let i = 0; i < 5_000; i++) {
    const id = ids.next()
    assert.match(id, UUID_SHAPE)
    // Every step counts one up, carries included (0x0f -> 0x10, 0xff -> 0x100, ...).
    assert.equal(parseInt(id.slice(24), 16), i, id)
    seen.add(id)
  }
  assert.equal(seen.size, 5_000)
  const [a, b] = [ids.next(), ids.next()]
  assert.equal(a.slice(0, 24), b.slice(0, 24))
  assert.equal(parseInt(b.slice(24), 16), parseInt(a.slice(24), 16) + 1)
})

test('two generators (two processes, or a restart) draw different prefixes', () => {
  const prefixes = new Set(Array.from({ length: 50 }, () => new RequestIds().next().slice(0, 24)))
  assert.equal(prefixes.size, 50)
})

test('a prefix is never reused past its counter: a new one is drawn', () => {
  const ids = new RequestIds(3)
  const first = [ids.next(), ids.next(), ids.next()]
  const fourth = ids.next()
  assert.equal(new Set(first.map((id) => id.slice(0, 24))).size, 1)
  assert.notEqual(fourth.slice(0, 24), first[0]!.slice(0, 24))
  assert.equal(fourth.slice(24), '000000000000')
  assert.match(fourth, UUID_SHAPE)
})

test("the client's usable x-request-id is kept; anything else gets a generated one", () => {
  assert.equal(requestId(req({ 'x-request-id': 'req-42:a/b+c=d@e.f' })), 'req-42:a/b+c=d@e.f')
  for (const bad of ['', 'has space', 'x'.repeat(129), 'semi;colon', 'new\nline']) {
    assert.match(requestId(req({ 'x-request-id': bad })), UUID_SHAPE, JSON.stringify(bad))
  }
  assert.match(requestId(req({})), UUID_SHAPE)
  assert.notEqual(requestId(req({})), requestId(req({})))
})
