/**
 * Geometry of the semantic radar (RNNVis): one axis per dimension (unit), one polygon per word.
 * Values are signed, so the radius is offset: the centre stands for -maxAbs, a "zero ring" at
 * `zeroAt` of the way out stands for 0, the outer ring for +maxAbs. Negative responses are drawn
 * inside the zero ring, positive ones outside it.
 */
import { parseTokens } from '../tokens'

export interface RadarGeometry {
  /** radius of the zero ring */
  zero: number
  /** radius of a value (clamped to [-maxAbs, maxAbs]; null/NaN -> the zero ring) */
  radius: (v: number | null | undefined) => number
  maxAbs: number
  inner: number
  outer: number
}

/**
 * Radial scale for signed values: -maxAbs -> inner, 0 -> zero ring, +maxAbs -> outer.
 * `maxAbs <= 0` (all values 0) draws everything on the zero ring.
 */
export function radarScale(maxAbs: number, outer: number, inner = 0.12 * outer): RadarGeometry {
  const m = Number.isFinite(maxAbs) && maxAbs > 0 ? maxAbs : 0
  const zero = (inner + outer) / 2
  const half = (outer - inner) / 2
  const radius = (v: number | null | undefined) => {
    if (v === null || v === undefined || !Number.isFinite(v) || m === 0) return zero
    const c = Math.max(-m, Math.min(m, v))
    return zero + (c / m) * half
  }
  return { zero, radius, maxAbs: m, inner, outer }
}

/** Angle of axis i of n (radians), the first axis pointing up, clockwise. */
export function axisAngle(i: number, n: number): number {
  return -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, n)
}

/** Point at radius r on axis i of n (x right, y down, centred at 0,0). */
export function polar(i: number, n: number, r: number): [number, number] {
  const a = axisAngle(i, n)
  return [r * Math.cos(a), r * Math.sin(a)]
}

/** The polygon vertices of one word's values (one per axis). */
export function radarPolygon(values: (number | null)[], g: RadarGeometry): [number, number][] {
  return values.map((v, i) => polar(i, values.length, g.radius(v)))
}

/** SVG path of a closed polygon. */
export function polygonPath(pts: [number, number][]): string {
  if (!pts.length) return ''
  return pts.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(2)},${y.toFixed(2)}`).join('') + 'Z'
}

/** Ring values to draw (signed, -maxAbs .. maxAbs) with their radii, including the zero ring. */
export function radarRings(g: RadarGeometry, steps = 2): { value: number; r: number; zero: boolean }[] {
  const out: { value: number; r: number; zero: boolean }[] = []
  if (g.maxAbs === 0) return [{ value: 0, r: g.zero, zero: true }]
  for (let k = -steps; k <= steps; k++) {
    const value = (k / steps) * g.maxAbs
    out.push({ value, r: g.radius(value), zero: k === 0 })
  }
  return out
}

/** Largest |v| of a (words, dims) table, ignoring null/NaN. */
export function tableMaxAbs(values: (number | null)[][]): number {
  let m = 0
  for (const row of values) for (const v of row) if (v !== null && Number.isFinite(v)) m = Math.max(m, Math.abs(v))
  return m
}

/** Text anchor for an axis label at angle a, so labels sit outside the circle. */
export function labelAnchor(i: number, n: number): 'start' | 'middle' | 'end' {
  const x = Math.cos(axisAngle(i, n))
  return Math.abs(x) < 0.2 ? 'middle' : x > 0 ? 'start' : 'end'
}

/** Default words for the radar: the most frequent word of each word cluster, up to `n`, then the next ones. */
export function defaultRadarWords(
  clusters: { words: { word: string; count: number }[] }[],
  n = 5,
): string[] {
  const sorted = clusters.map((c) => [...c.words].sort((a, b) => b.count - a.count))
  const out: string[] = []
  for (let rank = 0; out.length < n; rank++) {
    let any = false
    for (const ws of sorted) {
      if (rank < ws.length) {
        any = true
        if (!out.includes(ws[rank].word)) out.push(ws[rank].word)
        if (out.length >= n) break
      }
    }
    if (!any) break
  }
  return out
}

/** Parse the chip input: words separated by commas or whitespace, deduplicated, order kept. */
export function parseWords(raw: string): string[] {
  // "␣", "\n", "\t" stand for the blank characters of character models
  return parseTokens(raw)
}

/** Parse a unit list "3, 7 12" -> [3, 7, 12] (non-negative integers only, deduplicated). */
export function parseUnits(raw: string): number[] {
  const out: number[] = []
  for (const t of raw.split(/[\s,]+/)) {
    if (!/^\d+$/.test(t)) continue
    const n = Number(t)
    if (!out.includes(n)) out.push(n)
  }
  return out
}
