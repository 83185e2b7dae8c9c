// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { columnWidth, glyphGeom, glyphScale } from './glyph'
import type { Glyphs } from '../api'

const g: Glyphs = {
  stream: 'layer0.fwd.h', k: 2, unit_labels: [0, 1, 0],
  pos: [[2, 1], [4, 0]],
  neg: [[-1, -3], [-2, -8]],
  dpos: [[2, 1], [2, -1]],
  dneg: [[-1, -3], [-1, -5]],
  kept: [[NaN, NaN], [0.25, 1.5]],
}

describe('glyph scales', () => {
  it('maps the largest |sum| to half a row minus padding', () => {
    const s = glyphScale(g, 40)
    expect(s.max).toBe(8)
    expect(s.k).toBeCloseTo(18 / 8)
  })

  it('survives all-zero sums', () => {
    const s = glyphScale({ pos: [[0]], neg: [[0]] }, 40)
    expect(s.max).toBe(1)
    expect(Number.isFinite(s.k)).toBe(true)
  })

  it('computes bars, previous levels and kept share', () => {
    const s = glyphScale(g, 40)
    const a = glyphGeom(g, 1, 0, 100, 40, s)
    expect(a.y0).toBe(120)
    expect(a.posH).toBeCloseTo(4 * s.k)
    expect(a.negH).toBeCloseTo(2 * s.k)
    expect(a.prevPosY).toBeCloseTo(120 - 2 * s.k) // 4 - 2
    expect(a.prevNegY).toBeCloseTo(120 + 1 * s.k) // |-2 - (-1)|
    expect(a.kept).toBe(0.25)
    const b = glyphGeom(g, 1, 1, 0, 40, s)
    expect(b.negH).toBeCloseTo(18) // the largest sum fills half a row minus padding
    expect(b.kept).toBe(1) // clamped
    expect(glyphGeom(g, 0, 0, 0, 40, s).kept).toBeNull()
  })

  it('fits columns to the width within bounds', () => {
    expect(columnWidth(10, 570)).toBe(50)
    expect(columnWidth(1000, 570)).toBe(26)
    expect(columnWidth(2, 2000)).toBe(64)
  })
})
