/** A small seeded PRNG (mulberry32): the same seed replays the same run. */
export class Rng {
  private state: number

  constructor(seed: number) {
    this.state = seed >>> 0
  }

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  int(max: number): number {
    return Math.floor(this.next() * max)
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }

  /** Printable ASCII of length n. */
  text(n: number): string {
    let s = ''
    for (let i = 0; i < n; i++) s += String.fromCharCode(32 + this.int(95))
    return s
  }
}
