/** Units × time heatmap geometry and colour domain. Pure helpers, unit-tested. */
import { divergingScale, maxAbs, sequentialScale } from '../colors'

export interface HeatGeom {
  /** tokens (columns) and units (rows) */
  T: number
  U: number
  cellW: number
  cellH: number
  left: number
  top: number
  width: number
  height: number
}

/** Cell sizes that fit `maxW` × `maxH` (clamped to sensible bounds), plus margins for labels. */
export function heatGeometry(T: number, U: number, maxW: number, maxH = 260, left = 40, top = 6, bottom = 60): HeatGeom {
  const cellW = Math.max(3, Math.min(22, Math.floor((maxW - left - 4) / Math.max(1, T))))
  const cellH = Math.max(1, Math.min(10, Math.floor(maxH / Math.max(1, U))))
  return { T, U, cellW, cellH, left, top, width: left + T * cellW + 4, height: top + U * cellH + bottom }
}

/** The (token, row) under the point (x, y) in chart coordinates, or null outside the cells. */
export function cellAt(g: HeatGeom, x: number, y: number): { t: number; row: number } | null {
  const t = Math.floor((x - g.left) / g.cellW)
  const row = Math.floor((y - g.top) / g.cellH)
  if (t < 0 || t >= g.T || row < 0 || row >= g.U) return null
  return { t, row }
}

export interface HeatColor {
  mode: 'diverging' | 'sequential'
  max: number
  color: (v: number | null | undefined) => string
}

/**
 * Non-negative data (sigmoid gates) get a sequential scale over [0, max(1 if ≤ 1)];
 * signed data (h, c, tanh gates) a diverging scale symmetric around 0 at the 98th |v| percentile.
 */
export function heatColor(matrix: (number | null)[][]): HeatColor {
  let min = Infinity
  let mx = -Infinity
  for (const row of matrix)
    for (const v of row)
      if (v !== null && Number.isFinite(v)) {
        if (v < min) min = v
        if (v > mx) mx = v
      }
  if (min >= 0) {
    const max = mx <= 1 ? 1 : mx
    return { mode: 'sequential', max, color: sequentialScale(max) }
  }
  const m = maxAbs(matrix, 0.98) || 1
  return { mode: 'diverging', max: m, color: divergingScale(m) }
}

/** Row order of the units: grouped by cluster label when given (stable inside a cluster). */
export function rowOrder(U: number, labels?: number[] | null): number[] {
  const idx = Array.from({ length: U }, (_, i) => i)
  if (!labels || labels.length !== U) return idx
  return idx.sort((a, b) => labels[a] - labels[b] || a - b)
}

/** Mean over a set of units per token (null when none of them has a value). */
export function meanOver(matrix: (number | null)[][], units: number[]): (number | null)[] {
  return matrix.map((row) => {
    let s = 0
    let n = 0
    for (const u of units) {
      const v = row[u]
      if (v !== null && v !== undefined && Number.isFinite(v)) {
        s += v
        n++
      }
    }
    return n ? s / n : null
  })
}

/** The unit with the largest variance over time (a sensible default to colour the text by). */
export function mostActiveUnit(matrix: (number | null)[][]): number | null {
  if (!matrix.length || !matrix[0].length) return null
  const U = matrix[0].length
  let best = -1
  let bestVar = -1
  for (let u = 0; u < U; u++) {
    let s = 0, s2 = 0, n = 0
    for (const row of matrix) {
      const v = row[u]
      if (v !== null && Number.isFinite(v)) {
        s += v
        s2 += v * v
        n++
      }
    }
    const varr = n ? s2 / n - (s / n) ** 2 : -1
    if (varr > bestVar) {
      bestVar = varr
      best = u
    }
  }
  return best >= 0 ? best : null
}
