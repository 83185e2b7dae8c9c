/**
 * Pure logic of the discovery table: the inline score bar of a unit (AUC centred at 0.5,
 * correlations centred at 0) and the probe's gain over its baseline.
 */

export interface ScoreBar {
  /** bar start and end as fractions 0..1 of the cell width */
  x0: number
  x1: number
  /** position of the "no signal" mark (AUC 0.5 / r 0) as a fraction */
  mid: number
  /** > 0: unit higher on the annotation / positive correlation */
  sign: 1 | -1 | 0
}

/**
 * The bar of a score: AUC in [0, 1] drawn from 0.5, a correlation in [-1, 1] drawn from 0,
 * both on a cell where the left edge is the lowest possible score. Out-of-range values clamp.
 */
export function scoreBar(metric: string, score: number | null): ScoreBar {
  const mid = 0.5
  if (score === null || !Number.isFinite(score)) return { x0: mid, x1: mid, mid, sign: 0 }
  const f = metric === 'auc' ? Math.max(0, Math.min(1, score)) : (Math.max(-1, Math.min(1, score)) + 1) / 2
  const sign = f > mid ? 1 : f < mid ? -1 : 0
  return { x0: Math.min(mid, f), x1: Math.max(mid, f), mid, sign }
}

/** Probe summary: gain of the held-out score over the baseline, and fractions for two bars. */
export function probeGain(p: { test_score: number | null; baseline: number | null; metric: string } | null): {
  gain: number
  score: number
  base: number
} | null {
  if (!p || p.test_score === null || !Number.isFinite(p.test_score)) return null
  const base = p.baseline !== null && Number.isFinite(p.baseline) ? p.baseline : 0
  const clamp = (v: number) => Math.max(0, Math.min(1, Number.isFinite(v) ? v : 0))
  return { gain: p.test_score - base, score: clamp(p.test_score), base: clamp(base) }
}

/** Human name of a metric. */
export function metricName(metric: string): string {
  return metric === 'auc' ? 'AUC' : metric === 'pearson' ? 'r' : metric === 'spearman' ? 'ρ' : metric
}

/** Flatten a discovery answer into CSV rows (one per annotation × unit). */
export function discoveryRows(d: {
  annotations: { name: string; kind: string; metric: string; top: { stream: string; unit: number; score: number | null; effect: number | null }[] }[]
}): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const a of d.annotations) for (const [rank, t] of a.top.entries())
    out.push({ annotation: a.name, kind: a.kind, metric: a.metric, rank: rank + 1, stream: t.stream, unit: t.unit, score: t.score, effect: t.effect })
  return out
}
