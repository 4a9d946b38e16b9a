/**
 * Prints the config form of an API key: `npx node gateway/src/auth/hash-key.ts` reads the key from
 * standard input (so it stays out of shell history), or `--generate` makes a new random key.
 */
import { randomBytes } from 'node:crypto'
import { hashKey } from './authenticator.ts'

if (process.argv.includes('--generate')) {
  const key = `vx-${randomBytes(24).toString('base64url')}`
  process.stdout.write(`key:  ${key}\nhash: ${hashKey(key)}\n`)
} else {
  let input = ''
  process.stdin.setEncoding('utf8')
  for await (const chunk of process.stdin) input += chunk
  const key = input.trim()
  if (key === '') {
    process.stderr.write('usage: echo -n "$KEY" | npx node gateway/src/auth/hash-key.ts   (or --generate)\n')
    process.exit(2)
  }
  process.stdout.write(`${hashKey(key)}\n`)
}
