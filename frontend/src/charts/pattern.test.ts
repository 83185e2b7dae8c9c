import { describe, it, expect } from 'vitest'
import {
  brushToRange, rangeToPixels, windowFor, clampThreshold, roundThreshold, defaultThreshold,
  selectUnitsLocal, valueExtent, alignMatches, cellColumn, trackKind, binLengths, type MatchLike,
} from './pattern'

describe('brushToRange', () => {
  it('selects the tokens whose centre is inside the brush', () => {
    // step 10: token centres at 5, 15, 25, 35
    expect(brushToRange(4, 26, 10, 4)).toEqual([0, 3])
    expect(brushToRange(6, 26, 10, 4)).toEqual([1, 3])
    expect(brushToRange(26, 6, 10, 4)).toEqual([1, 3]) // reversed drag
    expect(brushToRange(0, 40, 10, 4)).toEqual([0, 4])
  })
  it('a narrow brush selects the token under it; clamps at the ends', () => {
    expect(brushToRange(11, 13, 10, 4)).toEqual([1, 2])
    expect(brushToRange(-50, 3, 10, 4)).toEqual([0, 1])
    expect(brushToRange(38, 90, 10, 4)).toEqual([3, 4])
    expect(brushToRange(0, 10, 10, 0)).toBeNull()
  })
  it('round-trips with rangeToPixels', () => {
    const [x0, x1] = rangeToPixels(2, 5, 12)
    expect(brushToRange(x0, x1, 12, 10)).toEqual([2, 5])
  })
})

describe('windowFor', () => {
  it('shows the whole doc when short, else centres the selection', () => {
    expect(windowFor(30, 80, 10, 12)).toEqual([0, 30])
    expect(windowFor(500, 80, null, null)).toEqual([0, 80])
    expect(windowFor(500, 80, 200, 210)).toEqual([165, 245])
    expect(windowFor(500, 80, 490, 495)).toEqual([420, 500])
    expect(windowFor(500, 80, 2, 3)).toEqual([0, 80])
  })
})

describe('threshold', () => {
  it('clamps percentiles and rounds drags', () => {
    expect(clampThreshold('pct', 130)).toBe(100)
    expect(clampThreshold('pct', -1)).toBe(0)
    expect(clampThreshold('abs', -3)).toBe(-3)
    expect(roundThreshold('pct', 90.6)).toBe(91)
    expect(roundThreshold('abs', 0.123456, 2)).toBe(0.12)
    expect(roundThreshold('abs', 12.3456, 40)).toBe(12.3)
    expect(defaultThreshold('abs', 'gate.f')).toBe(0.7)
    expect(defaultThreshold('pct')).toBe(90)
  })
})

describe('selectUnitsLocal (LSTMVis rule)', () => {
  // 5 tokens x 4 units
  const v = [
    [0.9, 0.0, 0.9, 0.0],
    [0.9, 0.8, 0.0, 0.8],
    [0.9, 0.8, 0.9, 0.8],
    [0.0, 0.8, 0.9, 0.0],
    [0.0, 0.0, 0.0, null],
  ]
  it('needs on over the range and off just before it', () => {
    // range [1,3): unit0 on but also on at 0 -> dropped; unit1 on, off at 0 -> kept;
    // unit2 off at 1 -> dropped; unit3 on, off before -> kept
    expect(selectUnitsLocal(v, 1, 3, 0.5)).toEqual([1, 3])
  })
  it('at the start there is nothing to be off', () => {
    expect(selectUnitsLocal(v, 0, 1, 0.5)).toEqual([0, 2])
  })
  it('offAfter also needs off at stop', () => {
    expect(selectUnitsLocal(v, 1, 3, 0.5, true)).toEqual([3])
  })
  it('accepts one threshold per unit; null is off; bad ranges give nothing', () => {
    expect(selectUnitsLocal(v, 1, 3, [0.5, 0.85, 0.5, 0.5])).toEqual([3])
    expect(selectUnitsLocal(v, 4, 5, -1)).toEqual([])
    expect(selectUnitsLocal(v, 3, 3, 0.5)).toEqual([])
    expect(selectUnitsLocal(v, 3, 9, 0.5)).toEqual([])
  })
  it('valueExtent', () => {
    expect(valueExtent(v)).toEqual([0, 0.9])
    expect(valueExtent([])).toEqual([-1, 1])
    expect(valueExtent([[2, 2]])).toEqual([1, 3])
  })
})

describe('alignMatches', () => {
  const m = (start: number, before: string[], match: string[], after: string[], counts?: number[]): MatchLike => ({
    doc: 0,
    start,
    stop: start + match.length,
    tokens: [...before, ...match, ...after],
    context: [before.length, after.length],
    counts: counts ?? [...before, ...match, ...after].map(() => 1),
    tracks: { pos: [...before, ...match, ...after].map(() => 'NN') },
  })
  it('aligns rows at the first matched token', () => {
    const a = alignMatches([m(10, ['a', 'b', 'c'], ['x', 'y'], ['d']), m(0, [], ['z'], ['e', 'f', 'g'], [0, 3, 0, 0])])
    expect(a.before).toBe(3)
    expect(a.after).toBe(4) // 1 matched + 3 after in row 2
    expect(a.columns).toBe(7)
    expect(a.maxCount).toBe(3)
    const r0 = a.rows[0]
    expect(r0.length).toBe(2)
    expect(r0.cells.map((c) => c.offset)).toEqual([-3, -2, -1, 0, 1, 2])
    expect(r0.cells.filter((c) => c.inMatch).map((c) => c.token)).toEqual(['x', 'y'])
    expect(cellColumn(a, r0.cells[3])).toBe(3)
    expect(cellColumn(a, a.rows[1].cells[0])).toBe(3) // both matches start in column 3
    expect(a.trackNames).toEqual(['pos'])
  })
  it('maps counts given for the match only', () => {
    const row = m(5, ['a'], ['x', 'y'], ['b'])
    row.counts = [4, 2]
    const a = alignMatches([row])
    expect(a.rows[0].cells.map((c) => c.count)).toEqual([null, 4, 2, null])
  })
  it('trackKind', () => {
    expect(trackKind(['NN', null])).toBe('categorical')
    expect(trackKind([1, 0, null])).toBe('numeric')
  })
})

describe('binLengths', () => {
  it('keeps one bin per length when few', () => {
    const b = binLengths({ lengths: [0, 1, 2, 3], counts: [0, 5, 0, 2] })
    expect(b.map((x) => [x.lo, x.hi, x.count])).toEqual([[1, 1, 5], [2, 2, 0], [3, 3, 2]])
  })
  it('merges lengths into at most maxBins equal-width bins, preserving the total', () => {
    const lengths = Array.from({ length: 100 }, (_, i) => i + 1)
    const counts = lengths.map(() => 1)
    const b = binLengths({ lengths, counts }, 10)
    expect(b).toHaveLength(10)
    expect(b[0]).toMatchObject({ lo: 1, hi: 10, count: 10, label: '1–10' })
    expect(b.reduce((s, x) => s + x.count, 0)).toBe(100)
  })
  it('is empty without matches', () => {
    expect(binLengths({ lengths: [0, 1], counts: [0, 0] })).toEqual([])
  })
})
