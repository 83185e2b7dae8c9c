/**
 * Pure logic of the pattern view (LSTMVis select & match): brush -> token range, threshold line
 * <-> value, the local "select" rule (same rule as rnnvis.analysis.pattern.select_units), the
 * alignment of matches at their start, and the match-length histogram.
 */

export type ThresholdKind = 'abs' | 'pct'

// ------------------------------------------------------------ brush and window

/**
 * Tokens under a horizontal brush [x0, x1] (pixels) where token i spans [i*step, (i+1)*step):
 * the tokens whose centre lies inside the brush; a brush too narrow to hold a centre selects the
 * token under its middle. Result [start, stop) in token indices of the plot (0..n), or null
 * for an empty plot.
 */
export function brushToRange(x0: number, x1: number, step: number, n: number): [number, number] | null {
  if (n <= 0 || !(step > 0)) return null
  const lo = Math.min(x0, x1)
  const hi = Math.max(x0, x1)
  let start = Math.ceil(lo / step - 0.5)
  let stop = Math.floor(hi / step - 0.5) + 1
  start = Math.max(0, start)
  stop = Math.min(n, stop)
  if (stop <= start) {
    const mid = Math.max(0, Math.min(n - 1, Math.floor((lo + hi) / 2 / step)))
    return [mid, mid + 1]
  }
  return [start, stop]
}

/** Pixel extent [x0, x1] of tokens [start, stop). */
export function rangeToPixels(start: number, stop: number, step: number): [number, number] {
  return [start * step, stop * step]
}

/**
 * The window [from, to) of `size` tokens of a document of `total` tokens to show so that the
 * selection [start, stop) is visible (centred when possible); from 0 when nothing is selected.
 */
export function windowFor(total: number, size: number, start: number | null, stop: number | null): [number, number] {
  if (total <= size || start === null) return [0, Math.min(total, size)]
  const end = stop ?? start + 1
  let from = Math.floor((start + end) / 2 - size / 2)
  from = Math.max(0, Math.min(total - size, from))
  return [from, from + size]
}

// ------------------------------------------------------------ threshold

/** Clamp a threshold to its kind's range (a percentile lies in 0..100). */
export function clampThreshold(kind: ThresholdKind, v: number): number {
  if (!Number.isFinite(v)) return kind === 'pct' ? 90 : 0
  return kind === 'pct' ? Math.max(0, Math.min(100, v)) : v
}

/** Round a dragged threshold to a readable precision: 1 for percentiles, 2 significant-ish for values. */
export function roundThreshold(kind: ThresholdKind, v: number, span = 1): number {
  if (kind === 'pct') return Math.round(clampThreshold('pct', v))
  if (!Number.isFinite(v)) return 0
  const e = span > 0 && Number.isFinite(span) ? Math.floor(Math.log10(span)) - 2 : -2
  const out = +(Math.round(v / 10 ** e) * 10 ** e).toFixed(Math.max(0, -e))
  return out === 0 ? 0 : out
}

/** Default threshold of a kind for a stream kind (gates live in 0..1, h in -1..1). */
export function defaultThreshold(kind: ThresholdKind, streamKind = 'h'): number {
  if (kind === 'pct') return 90
  return streamKind.startsWith('gate') ? 0.7 : streamKind === 'c' ? 0.5 : 0.3
}

// ------------------------------------------------------------ local selection

/**
 * Units on (>= theta) at every token of [start, stop) and off at start - 1 (when start > 0),
 * and off at stop when `offAfter` (and stop < tokens): the LSTMVis select rule over one sentence.
 * values: (tokens, units); theta: one number or one per unit. null values count as off.
 */
export function selectUnitsLocal(
  values: (number | null)[][], start: number, stop: number, theta: number | number[], offAfter = false,
): number[] {
  const n = values.length
  if (!(0 <= start && start < stop && stop <= n)) return []
  const units = values[0]?.length ?? 0
  const th = (u: number) => (Array.isArray(theta) ? theta[u] : theta)
  const on = (t: number, u: number) => {
    const v = values[t][u]
    return v !== null && v !== undefined && Number.isFinite(v) && v >= th(u)
  }
  const out: number[] = []
  for (let u = 0; u < units; u++) {
    let ok = true
    for (let t = start; t < stop && ok; t++) ok = on(t, u)
    if (ok && start > 0 && on(start - 1, u)) ok = false
    if (ok && offAfter && stop < n && on(stop, u)) ok = false
    if (ok) out.push(u)
  }
  return out
}

/** [min, max] over a (tokens, units) table, ignoring null; [-1, 1] when empty. */
export function valueExtent(values: (number | null)[][]): [number, number] {
  let lo = Infinity
  let hi = -Infinity
  for (const row of values) for (const v of row) if (v !== null && Number.isFinite(v)) {
    if (v < lo) lo = v
    if (v > hi) hi = v
  }
  if (lo === Infinity) return [-1, 1]
  if (lo === hi) return [lo - 1, hi + 1]
  return [lo, hi]
}

// ------------------------------------------------------------ match alignment

export interface MatchLike {
  doc: number
  start: number
  stop: number
  tokens: string[]
  context: [number, number]
  counts: number[]
  tracks: Record<string, (number | string | null)[]>
}

export interface AlignedCell {
  /** column relative to the match start (0 = first matched token, negative = context before) */
  offset: number
  token: string
  inMatch: boolean
  /** selected units on at this token (null when not known) */
  count: number | null
  /** annotation value per track (null when not known) */
  tracks: Record<string, number | string | null>
}

export interface AlignedRow<M extends MatchLike = MatchLike> {
  match: M
  cells: AlignedCell[]
  length: number
}

export interface Alignment<M extends MatchLike = MatchLike> {
  rows: AlignedRow<M>[]
  /** most context tokens before any match (columns left of offset 0) */
  before: number
  /** widest match + context after (columns from offset 0 on) */
  after: number
  /** columns in all: before + after */
  columns: number
  /** largest count seen (for the heatmap scale) */
  maxCount: number
  /** names of the annotation tracks present */
  trackNames: string[]
}

/**
 * Align matches at their first matched token. `tokens` hold `context[0]` tokens before and
 * `context[1]` after the match; `counts` and `tracks` are per token of `tokens` (or, if their
 * length is the match length, of the match only).
 */
export function alignMatches<M extends MatchLike>(matches: M[]): Alignment<M> {
  let before = 0
  let after = 0
  let maxCount = 0
  const names = new Set<string>()
  const rows = matches.map((m) => {
    const [cb, ca] = m.context ?? [0, 0]
    const n = m.tokens.length
    const len = Math.max(0, n - cb - ca)
    const perToken = <T>(arr: T[] | undefined, i: number): T | null => {
      if (!arr) return null
      if (arr.length === n) return arr[i] ?? null
      if (arr.length === len) return i >= cb && i < cb + len ? arr[i - cb] ?? null : null
      return null
    }
    const cells: AlignedCell[] = m.tokens.map((token, i) => {
      const tracks: Record<string, number | string | null> = {}
      for (const [k, arr] of Object.entries(m.tracks ?? {})) {
        names.add(k)
        tracks[k] = perToken(arr, i)
      }
      const count = perToken(m.counts, i)
      if (count !== null && count > maxCount) maxCount = count
      return { offset: i - cb, token, inMatch: i >= cb && i < cb + len, count, tracks }
    })
    before = Math.max(before, cb)
    after = Math.max(after, n - cb)
    return { match: m, cells, length: len }
  })
  return { rows, before, after, columns: before + after, maxCount, trackNames: [...names] }
}

/** Grid column of a cell (0-based, column `before` = first matched token). */
export function cellColumn(a: { before: number }, cell: { offset: number }): number {
  return a.before + cell.offset
}

/** 'categorical' when a track holds strings (POS tags), else 'numeric'. */
export function trackKind(values: (number | string | null)[]): 'categorical' | 'numeric' {
  return values.some((v) => typeof v === 'string') ? 'categorical' : 'numeric'
}

// ------------------------------------------------------------ length histogram

export interface LengthBin {
  /** lengths lo..hi inclusive */
  lo: number
  hi: number
  count: number
  label: string
}

/**
 * Bin the match-length histogram ({lengths, counts}, e.g. lengths 1..L) into at most `maxBins`
 * bins of equal integer width; lengths with zero counts inside the range are kept as empty bins.
 */
export function binLengths(hist: { lengths: number[]; counts: number[] }, maxBins = 30): LengthBin[] {
  const pairs = hist.lengths.map((l, i) => [l, hist.counts[i] ?? 0] as const).filter(([, c]) => c > 0)
  if (!pairs.length) return []
  const lo = Math.min(...pairs.map(([l]) => l))
  const hi = Math.max(...pairs.map(([l]) => l))
  const width = Math.max(1, Math.ceil((hi - lo + 1) / Math.max(1, maxBins)))
  const bins: LengthBin[] = []
  for (let a = lo; a <= hi; a += width) {
    const b = Math.min(hi, a + width - 1)
    bins.push({ lo: a, hi: b, count: 0, label: a === b ? String(a) : `${a}–${b}` })
  }
  for (const [l, c] of pairs) bins[Math.floor((l - lo) / width)].count += c
  return bins
}
