/**
 * Sentence glyphs (RNNVis): per token and unit cluster, the sums of positive and negative unit
 * values (bars up / down from a baseline), their change from the previous token, and the share
 * of the previous state that was kept. Pure geometry, unit-tested.
 */
import type { Glyphs } from '../api'

export interface GlyphScale {
  /** px per unit of summed value */
  k: number
  /** the largest |pos| or |neg| sum over the sentence */
  max: number
}

/** One scale for every glyph so bars compare across tokens and clusters; half a row = max. */
export function glyphScale(g: Pick<Glyphs, 'pos' | 'neg'>, rowH: number): GlyphScale {
  let max = 0
  for (const row of g.pos) for (const v of row) if (Number.isFinite(v)) max = Math.max(max, Math.abs(v))
  for (const row of g.neg) for (const v of row) if (Number.isFinite(v)) max = Math.max(max, Math.abs(v))
  if (!(max > 0)) max = 1
  return { k: (rowH / 2 - 2) / max, max }
}

export interface GlyphGeom {
  /** baseline (y of zero) */
  y0: number
  /** positive bar: from y0 - posH to y0; negative bar: from y0 to y0 + negH */
  posH: number
  negH: number
  /** level of the previous token's sums (y of the dashed change markers) */
  prevPosY: number
  prevNegY: number
  /** change from the previous token, signed */
  dpos: number
  dneg: number
  /** kept share 0..1 (null when not defined, e.g. first token) */
  kept: number | null
}

/** Geometry of the glyph of token t, cluster c, in a row whose top is `top` and height `rowH`. */
export function glyphGeom(g: Glyphs, t: number, c: number, top: number, rowH: number, s: GlyphScale): GlyphGeom {
  const y0 = top + rowH / 2
  const pos = Math.abs(g.pos[t]?.[c] ?? 0)
  const neg = Math.abs(g.neg[t]?.[c] ?? 0)
  const dpos = g.dpos[t]?.[c] ?? 0
  const dneg = g.dneg[t]?.[c] ?? 0
  const prevPos = Math.max(0, pos - dpos)
  // dneg is the change of the (negative) sum: previous neg sum = neg_t - dneg_t
  const negSigned = g.neg[t]?.[c] ?? 0
  const prevNeg = Math.abs(negSigned - dneg)
  const keptRaw = g.kept[t]?.[c]
  const kept = keptRaw === null || keptRaw === undefined || !Number.isFinite(keptRaw) ? null : Math.max(0, Math.min(1, keptRaw))
  return {
    y0,
    posH: pos * s.k,
    negH: neg * s.k,
    prevPosY: y0 - prevPos * s.k,
    prevNegY: y0 + prevNeg * s.k,
    dpos,
    dneg,
    kept,
  }
}

/** Column width for T tokens in `width` px, between `min` and `max`. */
export function columnWidth(T: number, width: number, label = 70, min = 26, max = 64): number {
  return Math.max(min, Math.min(max, Math.floor((width - label) / Math.max(1, T))))
}
