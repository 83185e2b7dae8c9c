/** Data shaping for the summary view. Pure, unit-tested. */
import type { Metrics, Training } from '../api'

/** Bookkeeping series (token counts, throughput, learning rate…) that are not quality curves. */
export function isBookkeeping(key: string): boolean {
  return /(^|_)(n|tokens|count|examples)$|per_s|time|lr$|^step$/.test(key)
}

/** Curves grouped by metric key: one chart per key, one series per split (bookkeeping dropped). */
export function curvesByKey(t: Training | null): { key: string; series: { split: string; points: { x: number; y: number | null }[] }[] }[] {
  if (!t) return []
  const out = new Map<string, { split: string; points: { x: number; y: number | null }[] }[]>()
  for (const c of t.curves) {
    if (isBookkeeping(c.key)) continue
    if (!out.has(c.key)) out.set(c.key, [])
    out.get(c.key)!.push({ split: c.split, points: c.points.map((p) => ({ x: p.epoch ?? p.step, y: p.value })) })
  }
  // loss-like keys first
  const rank = (k: string) => (/loss/.test(k) ? 0 : /ppl|perplex/.test(k) ? 1 : /acc|top/.test(k) ? 2 : 3)
  return [...out.entries()].sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0])).map(([key, series]) => ({ key, series }))
}

/** Metrics of the model next to its baselines: the union of numeric keys as columns. */
export function metricsTable(m: Metrics | null): { columns: string[]; rows: { name: string; values: (number | null)[]; own: boolean }[] } {
  if (!m) return { columns: [], rows: [] }
  const all = [{ name: 'this model', metrics: m.metrics, own: true }, ...m.baselines.map((b) => ({ ...b, own: false }))]
  const columns: string[] = []
  for (const r of all)
    for (const [k, v] of Object.entries(r.metrics ?? {}))
      if ((typeof v === 'number' || v === null) && !columns.includes(k)) columns.push(k)
  return {
    columns,
    rows: all.map((r) => ({ name: r.name, own: r.own, values: columns.map((c) => {
      const v = (r.metrics ?? {})[c]
      return typeof v === 'number' && Number.isFinite(v) ? v : null
    }) })),
  }
}

/** Is a smaller value better for this metric name? */
export function lowerIsBetter(key: string): boolean {
  return /loss|ppl|perplex|bpc|err|ece|nll/i.test(key)
}

/** Index of the best row for each column (null when the column has no value). */
export function bestRows(table: ReturnType<typeof metricsTable>): (number | null)[] {
  return table.columns.map((c, j) => {
    if (isBookkeeping(c)) return null
    let best: number | null = null
    table.rows.forEach((r, i) => {
      const v = r.values[j]
      if (v === null) return
      if (best === null) best = i
      else {
        const b = table.rows[best].values[j] as number
        if (lowerIsBetter(c) ? v < b : v > b) best = i
      }
    })
    return best
  })
}

/** Row-normalised confusion matrix (each gold row sums to 1; empty rows stay 0). */
export function normalizeRows(m: number[][]): number[][] {
  return m.map((row) => {
    const s = row.reduce((a, b) => a + b, 0)
    return row.map((v) => (s ? v / s : 0))
  })
}
