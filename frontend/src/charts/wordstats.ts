/** Geometry of the word-distribution bars of a unit (mean bar + quantile/std whiskers). */
import type { WordStat } from '../api'

export interface StatRow {
  word: string
  mean: number
  count: number
  /** whisker (q09..q91 or mean ± std) and box (q25..q75 or none) */
  lo: number
  hi: number
  boxLo: number | null
  boxHi: number | null
}

export function statRows(stats: WordStat[]): StatRow[] {
  return stats.map((s) => {
    if (s.q) {
      return { word: s.word, mean: s.mean, count: s.count, lo: s.q[0], hi: s.q[3], boxLo: s.q[1], boxHi: s.q[2] }
    }
    const sd = Number.isFinite(s.std) ? s.std : 0
    return { word: s.word, mean: s.mean, count: s.count, lo: s.mean - sd, hi: s.mean + sd, boxLo: null, boxHi: null }
  })
}

/** A symmetric domain [-m, m] covering every whisker, so positive and negative panels share it. */
export function statDomain(rows: StatRow[]): [number, number] {
  let m = 0
  for (const r of rows) m = Math.max(m, Math.abs(r.lo), Math.abs(r.hi), Math.abs(r.mean))
  if (!(m > 0)) m = 1
  return [-m, m]
}
