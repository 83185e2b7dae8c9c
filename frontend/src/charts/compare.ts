/**
 * Pure logic of the compare view: the signed per-token loss difference (negative = model A
 * better, drawn blue; positive = model B better, drawn red), the heatmap colour mapping of the
 * layer-similarity matrices, the sorted matched-pair bars and the loss tables.
 */
import { divergingScale, maxAbs, sequentialScale } from '../colors'

/**
 * Signed loss difference per token, loss_a - loss_b: < 0 where A has the lower loss (A better),
 * > 0 where B is better. Falls back to `diff` (taken as loss_a - loss_b) where a loss is missing.
 */
export function lossDiff(lossA: (number | null)[], lossB: (number | null)[], diff?: (number | null)[] | null): (number | null)[] {
  const n = Math.max(lossA.length, lossB.length, diff?.length ?? 0)
  const out: (number | null)[] = []
  for (let i = 0; i < n; i++) {
    const a = lossA[i]
    const b = lossB[i]
    if (a !== null && a !== undefined && b !== null && b !== undefined && Number.isFinite(a) && Number.isFinite(b)) out.push(a - b)
    else {
      const d = diff?.[i]
      out.push(d !== null && d !== undefined && Number.isFinite(d) ? d : null)
    }
  }
  return out
}

/** Colour of each token's loss difference: blue = A better, red = B better, white = equal. */
export function lossDiffColors(d: (number | null)[], q = 0.98): string[] {
  const s = divergingScale(maxAbs(d, q))
  return d.map((v) => s(v))
}

/** Which model is better at a token ('a' | 'b' | '=' | null). */
export function betterAt(d: number | null, eps = 1e-9): 'a' | 'b' | '=' | null {
  if (d === null || !Number.isFinite(d)) return null
  return d < -eps ? 'a' : d > eps ? 'b' : '='
}

/**
 * Colour function of a similarity heatmap: CKA and SVCCA live in [0, 1] (sequential); a matrix
 * with negative entries (e.g. correlations) gets the diverging scale.
 */
export function heatColor(matrix: (number | null)[][]): (v: number | null) => string {
  let lo = Infinity
  let hi = -Infinity
  for (const row of matrix) for (const v of row) if (v !== null && Number.isFinite(v)) {
    lo = Math.min(lo, v)
    hi = Math.max(hi, v)
  }
  if (lo === Infinity) return sequentialScale(1)
  if (lo < 0) return divergingScale(Math.max(Math.abs(lo), Math.abs(hi)))
  return sequentialScale(Math.max(1, hi))
}

/** Matched pairs sorted by r, strongest first, with their rank. */
export function sortedPairs<P extends { r: number | null }>(pairs: P[]): (P & { rank: number })[] {
  return [...pairs]
    .sort((x, y) => (y.r ?? -Infinity) - (x.r ?? -Infinity))
    .map((p, rank) => ({ ...p, rank }))
}

export type GroupSort = 'diff' | 'absdiff' | 'n' | 'group'

/** Loss groups sorted: by |diff| (default), diff (A better first), count, or name. */
export function sortGroups<G extends { group: string; n: number; diff: number | null }>(rows: G[], by: GroupSort = 'absdiff'): G[] {
  const v = (x: number | null) => (x === null || !Number.isFinite(x) ? 0 : x)
  const out = [...rows]
  if (by === 'absdiff') out.sort((a, b) => Math.abs(v(b.diff)) - Math.abs(v(a.diff)))
  else if (by === 'diff') out.sort((a, b) => v(a.diff) - v(b.diff))
  else if (by === 'n') out.sort((a, b) => b.n - a.n)
  else out.sort((a, b) => a.group.localeCompare(b.group))
  return out
}

/**
 * The sign of a loss group's diff as reported by the server may be either convention; this
 * recomputes it as mean_a - mean_b (< 0: A better) when both means are known.
 */
export function groupDiff(g: { mean_a: number | null; mean_b: number | null; diff: number | null }): number | null {
  if (g.mean_a !== null && g.mean_b !== null && Number.isFinite(g.mean_a) && Number.isFinite(g.mean_b)) return g.mean_a - g.mean_b
  return g.diff
}

/** Row and column totals of a contingency table, and each cell's share of its row. */
export function contingency(table: number[][]): { rows: number[]; cols: number[]; share: number[][]; total: number } {
  const rows = table.map((r) => r.reduce((s, x) => s + (x || 0), 0))
  const ncol = Math.max(0, ...table.map((r) => r.length))
  const cols = Array.from({ length: ncol }, (_, j) => table.reduce((s, r) => s + (r[j] || 0), 0))
  const share = table.map((r, i) => r.map((x) => (rows[i] ? (x || 0) / rows[i] : 0)))
  return { rows, cols, share, total: rows.reduce((s, x) => s + x, 0) }
}

export interface PlacedToken {
  i: number
  token: string
  x: number
  y: number
  w: number
}

/**
 * Lay tokens out as wrapped text in an SVG of `width` px: each token is a box of
 * `pad + charW * length` px; a line wraps when the next box would overflow. Returns the boxes
 * and the total height (lines × lineH).
 */
export function layoutTokens(tokens: string[], width: number, charW = 7, lineH = 22, pad = 8): { boxes: PlacedToken[]; height: number } {
  const boxes: PlacedToken[] = []
  let x = 0
  let line = 0
  tokens.forEach((token, i) => {
    const w = Math.min(width, pad + charW * Math.max(1, token.length))
    if (x > 0 && x + w > width) {
      x = 0
      line++
    }
    boxes.push({ i, token, x, y: line * lineH, w })
    x += w + 2
  })
  return { boxes, height: tokens.length ? (line + 1) * lineH : 0 }
}
