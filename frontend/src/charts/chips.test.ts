// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { bandLayout, chipLayout, cloudBoxes, partners, ribbon } from './chips'

describe('chipLayout', () => {
  const clusters = [
    { id: 0, units: [5, 6, 7] },
    { id: 1, units: Array.from({ length: 23 }, (_, i) => i + 10) },
  ]

  it('places one cell per unit in rows of `cols`, chips stacked without overlap', () => {
    const { chips, width, height } = chipLayout(clusters, { cell: 8, gap: 2, cols: 10, pad: 3, chipGap: 12 })
    expect(chips[0].cells.map((c) => c.unit)).toEqual([5, 6, 7])
    expect(chips[1].rows).toBe(3)
    expect(width).toBe(10 * 10 - 2 + 6)
    // second chip: unit 20 is 11th -> row 1, col 0
    const c = chips[1].cells[10]
    expect(c.unit).toBe(20)
    expect(c.x).toBe(3)
    expect(c.y).toBe(chips[1].y + 3 + 10)
    expect(chips[1].y).toBe(chips[0].y + chips[0].h + 12)
    expect(height).toBe(chips[1].y + chips[1].h)
    // all cells inside their chip
    for (const ch of chips)
      for (const cell of ch.cells) {
        expect(cell.x + 8).toBeLessThanOrEqual(ch.x + ch.w)
        expect(cell.y + 8).toBeLessThanOrEqual(ch.y + ch.h)
      }
  })

  it('spreads chips to fill a minimum height', () => {
    const { height } = chipLayout(clusters, { minHeight: 400 })
    expect(height).toBeCloseTo(400)
  })

  it('handles no clusters', () => {
    expect(chipLayout([])).toEqual({ chips: [], width: expect.any(Number), height: 0 })
  })
})

describe('cloudBoxes', () => {
  it('fills the height, keeps order and a minimum size', () => {
    const boxes = cloudBoxes([{ id: 0, n: 400 }, { id: 1, n: 1 }, { id: 2, n: 100 }], { x: 300, w: 200, height: 500, gap: 10, minH: 60 })
    expect(boxes.map((b) => b.id)).toEqual([0, 1, 2])
    expect(boxes[1].h).toBeGreaterThanOrEqual(60)
    const last = boxes[2]
    expect(last.y + last.h).toBeCloseTo(500)
    expect(boxes[0].h).toBeGreaterThan(boxes[2].h)
  })
})

describe('bandLayout', () => {
  const chips = [
    { id: 0, x: 0, y: 0, w: 100, h: 50 },
    { id: 1, x: 0, y: 100, w: 100, h: 50 },
  ]
  const clouds = [
    { id: 0, x: 300, y: 0, w: 200, h: 80 },
    { id: 1, x: 300, y: 100, w: 200, h: 80 },
  ]

  it('gives widths proportional to |link| and keeps the sign', () => {
    const bands = bandLayout([[2, -1], [0.1, -4]], chips, clouds, { maxWidth: 20, minFrac: 0.1 })
    const byKey = new Map(bands.map((b) => [`${b.i}${b.j}`, b]))
    expect(byKey.get('11')!.width).toBeCloseTo(20)
    expect(byKey.get('00')!.width).toBeCloseTo(10)
    expect(byKey.get('01')!.value).toBe(-1)
    expect(byKey.has('10')).toBe(false) // 0.1 < 0.1 * 4
    for (const b of bands) {
      expect(b.x0).toBe(100)
      expect(b.x1).toBe(300)
    }
  })

  it('stacks bands at a chip in the order of their targets, centred on the chip', () => {
    const bands = bandLayout([[1, 1], [0, 0]], chips, clouds, { maxWidth: 10, minFrac: 0 })
      .filter((b) => b.i === 0)
      .sort((a, b) => a.j - b.j)
    expect(bands[0].sy).toBeLessThan(bands[1].sy)
    expect((bands[0].sy + bands[1].sy) / 2).toBeCloseTo(25)
    // they touch without overlapping
    expect(bands[1].sy - bands[0].sy).toBeCloseTo((bands[0].width + bands[1].width) / 2)
  })

  it('scales all bands down when they would overflow a box', () => {
    const small = [{ id: 0, x: 0, y: 0, w: 10, h: 12 }]
    const bands = bandLayout([[1, 1]], small, clouds, { maxWidth: 10, minFrac: 0 })
    expect(bands.reduce((a, b) => a + b.width, 0)).toBeCloseTo(12)
  })

  it('skips null links and all-zero matrices', () => {
    expect(bandLayout([[0, 0], [0, 0]], chips, clouds)).toEqual([])
    expect(bandLayout([[null, 1], [null, null]], chips, clouds)).toHaveLength(1)
  })

  it('finds the partners of a hovered chip or cloud', () => {
    const bands = bandLayout([[1, 0], [1, 1]], chips, clouds, { minFrac: 0.5 })
    expect([...partners(bands, { type: 'chip', id: 0 }).clouds]).toEqual([0])
    expect([...partners(bands, { type: 'cloud', id: 0 }).chips].sort()).toEqual([0, 1])
    expect(partners(bands, null).chips.size).toBe(0)
  })
})

describe('ribbon', () => {
  it('is a closed path through both ends', () => {
    const p = ribbon(0, 10, 100, 50, 4)
    expect(p.startsWith('M0,8')).toBe(true)
    expect(p).toContain('100,48')
    expect(p).toContain('L100,52')
    expect(p.endsWith('0,12Z')).toBe(true)
  })
})
