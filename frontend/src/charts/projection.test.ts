import { describe, it, expect } from 'vitest'
import { fitPoints, unitOfPoint, pointGroups, trajectoryPath } from './projection'

describe('fitPoints', () => {
  it('fits with one scale for both axes, centred, y up', () => {
    const f = fitPoints([{ x: 0, y: 0 }, { x: 10, y: 5 }], 220, 220, 10)
    expect(f.k).toBeCloseTo(20) // 200 px / 10
    expect(f.sx(0)).toBeCloseTo(10)
    expect(f.sx(10)).toBeCloseTo(210)
    expect(f.sy(2.5)).toBeCloseTo(110) // centre
    expect(f.sy(5)).toBeLessThan(f.sy(0)) // up
  })
  it('handles one point and no points', () => {
    const one = fitPoints([{ x: 3, y: 3 }], 100, 50)
    expect(one.sx(3)).toBe(50)
    expect(one.sy(3)).toBe(25)
    const none = fitPoints([], 100, 50)
    expect(none.sx(1)).toBe(50)
    const nan = fitPoints([{ x: NaN, y: 1 }, { x: 0, y: 0 }, { x: 2, y: 0 }], 104, 100, 2)
    expect(nan.k).toBeCloseTo(50)
  })
})

describe('units and groups', () => {
  it('reads the unit from the label, else the index', () => {
    expect(unitOfPoint({ label: '12' }, 0)).toBe(12)
    expect(unitOfPoint({ label: 'unit 7' }, 0)).toBe(7)
    expect(unitOfPoint({ label: 'the' }, 4)).toBe(4)
  })
  it('prefers the co-clustering, falls back to group', () => {
    const pts = [
      { x: 0, y: 0, label: '0', group: 5 },
      { x: 0, y: 0, label: '1', group: null },
      { x: 0, y: 0, label: '2', group: 1 },
    ]
    expect(pointGroups(pts, new Map([[0, 2], [1, 3]]))).toEqual([2, 3, 1])
    expect(pointGroups(pts, null)).toEqual([5, null, 1])
  })
  it('joins the trajectory in order, breaking at gaps', () => {
    const f = { sx: (x: number) => x, sy: (y: number) => y, k: 1 }
    expect(trajectoryPath([{ x: 0, y: 0 }, { x: 1, y: 2 }], f)).toBe('M0.00,0.00L1.00,2.00')
    expect(trajectoryPath([{ x: 0, y: 0 }, { x: NaN, y: 0 }, { x: 1, y: 1 }], f)).toBe('M0.00,0.00M1.00,1.00')
  })
})
