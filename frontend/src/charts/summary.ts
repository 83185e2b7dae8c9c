/** Data shaping for the summary view. Pure, unit-tested. */
import type { Metrics, RunMetrics, Training, TrainingDynamics } from '../api'

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

/** The curves of GET /api/runs/{id}/metrics in the shape of Training.curves (points by step). */
export function runCurves(m: RunMetrics): Training['curves'] {
  const out: Training['curves'] = []
  for (const split of Object.keys(m.series).sort())
    for (const key of Object.keys(m.series[split]).sort())
      out.push({ split, key, points: [...m.series[split][key]].sort((a, b) => a.step - b.step) })
  return out
}

/** x of each checkpoint: its epoch ("epoch 3 (best)" -> 3) when every label has a distinct rising one, else 1, 2, … */
export function checkpointX(labels: string[]): number[] {
  const ep = labels.map((l) => {
    const m = /epoch\s+(\d+(?:\.\d+)?)/.exec(l)
    return m ? Number(m[1]) : NaN
  })
  const rising = ep.every((e, i) => Number.isFinite(e) && (i === 0 || e > ep[i - 1]))
  return rising ? ep : labels.map((_, i) => i + 1)
}

/** Short legend names: the layer/direction prefix is dropped when all streams share it. */
export function shortStreamNames(names: string[]): Record<string, string> {
  const prefix = (n: string) => /^layer\d+\.[a-z]+\./.exec(n)?.[0] ?? ''
  const p = names.length ? prefix(names[0]) : ''
  const same = !!p && names.every((n) => prefix(n) === p)
  return Object.fromEntries(names.map((n) => [n, same ? n.slice(p.length) : n]))
}

export interface DynSeries {
  /** legend name */
  name: string
  stream: string
  /** 'left' / 'right' for saturation, else '' */
  side: '' | 'left' | 'right'
  points: { x: number; y: number | null }[]
}

/**
 * Checkpoint dynamics as line series: gate saturation (left dashed, right solid per gate stream),
 * mean |Δh| and CKA to the final checkpoint (one per state stream), plus CSV rows
 * (one per checkpoint × stream).
 */
export function dynamicsSeries(d: TrainingDynamics | null): {
  x: number[]
  xLabel: string
  saturation: DynSeries[]
  delta: DynSeries[]
  cka: DynSeries[]
  rows: Record<string, string | number | null>[]
} {
  if (!d) return { x: [], xLabel: 'epoch', saturation: [], delta: [], cka: [], rows: [] }
  const x = checkpointX(d.labels)
  const xLabel = x.every((v, i) => v === i + 1) && !/epoch/.test(d.labels[0] ?? '') ? 'checkpoint' : 'epoch'
  const pts = (vals: (number | null)[] | undefined) => x.map((xv, i) => ({ x: xv, y: vals?.[i] ?? null }))
  const satNames = Object.keys(d.saturation ?? {}).sort()
  const stateNames = [...new Set([...Object.keys(d.mean_abs_delta ?? {}), ...Object.keys(d.cka_to_final ?? {})])].sort()
  const shortSat = shortStreamNames(satNames)
  const shortState = shortStreamNames(stateNames)
  const saturation: DynSeries[] = satNames.flatMap((st) => [
    { name: `${shortSat[st]} left`, stream: st, side: 'left' as const, points: pts(d.saturation[st].left) },
    { name: `${shortSat[st]} right`, stream: st, side: 'right' as const, points: pts(d.saturation[st].right) },
  ])
  const delta = stateNames.filter((st) => d.mean_abs_delta?.[st])
    .map((st) => ({ name: shortState[st], stream: st, side: '' as const, points: pts(d.mean_abs_delta[st]) }))
  const cka = stateNames.filter((st) => d.cka_to_final?.[st])
    .map((st) => ({ name: shortState[st], stream: st, side: '' as const, points: pts(d.cka_to_final[st]) }))
  const rows: Record<string, string | number | null>[] = []
  d.labels.forEach((label, i) => {
    for (const st of [...satNames, ...stateNames.filter((n) => !satNames.includes(n))])
      rows.push({
        checkpoint: label, x: x[i], stream: st,
        saturation_left: d.saturation?.[st]?.left[i] ?? null, saturation_right: d.saturation?.[st]?.right[i] ?? null,
        mean_abs_delta: d.mean_abs_delta?.[st]?.[i] ?? null, cka_to_final: d.cka_to_final?.[st]?.[i] ?? null,
      })
  })
  return { x, xLabel, saturation, delta, cka, rows }
}

/**
 * The value label of a classifier slice: accuracy and size, or "no data" for an empty slice (its
 * accuracy is undefined, not 0 %).
 */
export function sliceLabel(s: { n: number; accuracy: number | null }): string {
  if (!s.n || s.accuracy === null || !Number.isFinite(s.accuracy)) return `no data · n ${s.n ?? 0}`
  return `${(s.accuracy * 100).toFixed(1)} % · n ${s.n}`
}

/** Room (px) for rotated or end-anchored text labels of `font` px: about 0.6 em a character. */
export function labelRoom(labels: string[], font = 10): number {
  return Math.ceil(Math.max(0, ...labels.map((l) => l.length)) * font * 0.62)
}
