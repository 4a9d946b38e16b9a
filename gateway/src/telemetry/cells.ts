/**
 * Allocation-free counters and histograms for the request path. prom-client's own `observe` builds
 * a labels object and a hash string on every call; here the caller resolves a label set to a cell
 * once (and caches it), and recording is plain arithmetic on that cell. Both classes implement the
 * metric contract prom-client's Registry reads (`name`, `help`, `type`, `aggregator`, `get()`), so
 * exposition, and aggregation across cluster workers, are prom-client's as usual.
 */

type Labels = Record<string, string>

interface MetricValue {
  labels: Labels
  value: number
  metricName?: string
}

export class CounterCell {
  readonly labels: Labels
  value: number
  constructor(labels: Labels) {
    this.labels = labels
    this.value = 0
  }
  inc(by = 1): void {
    this.value += by
  }
}

export class HistogramCell {
  readonly labels: Labels
  /** counts[i]: observations <= bounds[i] and > bounds[i-1]; the last slot is +Inf. */
  readonly counts: Float64Array
  private readonly bounds: Float64Array
  sum: number
  count: number
  constructor(labels: Labels, bounds: Float64Array) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
    this.sum = 0
    this.count = 0
  }
  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

abstract class CellMetric<C> {
  readonly name: string
  readonly help: string
  abstract readonly type: 'counter' | 'histogram'
  readonly aggregator = 'sum'
  protected readonly labelNames: readonly string[]
  protected readonly cells = new Map<string, C>()

  constructor(opts: { name: string; help: string; labelNames: readonly string[] }) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
  }

  /** The cell for these label values (in labelNames order); resolve once, keep the cell. */
  cell(...values: string[]): C {
    const key = values.join('\u0001')
    let c = this.cells.get(key)
    if (c === undefined) {
      const labels: Labels = {}
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''))
      c = this.create(labels)
      this.cells.set(key, c)
    }
    return c
  }

  protected abstract create(labels: Labels): C
  abstract get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] }
}

export class FastCounter extends CellMetric<CounterCell> {
  readonly type = 'counter' as const
  protected create(labels: Labels): CounterCell {
    return new CounterCell(labels)
  }
  get() {
    const values: MetricValue[] = []
    for (const c of this.cells.values()) values.push({ labels: c.labels, value: c.value })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

export class FastHistogram extends CellMetric<HistogramCell> {
  readonly type = 'histogram' as const
  private readonly bounds: Float64Array

  constructor(opts: { name: string; help: string; labelNames: readonly string[]; buckets: readonly number[] }) {
    super(opts)
    this.bounds = Float64Array.from([...opts.buckets].sort((a, b) => a - b))
  }

  protected create(labels: Labels): HistogramCell {
    return new HistogramCell(labels, this.bounds)
  }

  get() {
    const values: MetricValue[] = []
    const bucket = `${this.name}_bucket`
    for (const c of this.cells.values()) {
      let acc = 0
      this.bounds.forEach((le, i) => {
        acc += c.counts[i]!
        values.push({ labels: { le: String(le), ...c.labels }, value: acc, metricName: bucket })
      })
      values.push({ labels: { le: '+Inf', ...c.labels }, value: c.count, metricName: bucket })
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` })
      values.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
