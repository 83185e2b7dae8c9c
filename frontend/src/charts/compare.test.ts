import { describe, it, expect } from 'vitest'
import { lossDiff, lossDiffColors, betterAt, heatColor, sortedPairs, sortGroups, groupDiff, contingency, layoutTokens } from './compare'
import { MISSING } from '../colors'

describe('loss difference', () => {
  it('is loss_a - loss_b: negative where A is better', () => {
    expect(lossDiff([1, 3, null], [2, 1, 5], [9, 9, 0.5])).toEqual([-1, 2, 0.5])
    expect(lossDiff([1], [null], null)).toEqual([null])
    expect(betterAt(-1)).toBe('a')
    expect(betterAt(2)).toBe('b')
    expect(betterAt(0)).toBe('=')
    expect(betterAt(null)).toBeNull()
  })
  it('colours A-better blue and B-better red', () => {
    const [a, b, eq, miss] = lossDiffColors([-1, 1, 0, null], 1)
    const rgb = (c: string) => c.match(/\d+/g)!.map(Number)
    expect(rgb(a)[2]).toBeGreaterThan(rgb(a)[0]) // blue
    expect(rgb(b)[0]).toBeGreaterThan(rgb(b)[2]) // red
    const e = rgb(eq)
    expect(Math.min(...e)).toBeGreaterThan(230) // near white
    expect(miss).toBe(MISSING)
  })
})

describe('heatColor', () => {
  it('is sequential for CKA in [0, 1] (darker = more similar)', () => {
    const c = heatColor([[0, 0.5], [1, null]])
    const lum = (s: string) => s.match(/\d+/g)!.map(Number).reduce((x, y) => x + y, 0)
    expect(lum(c(1))).toBeLessThan(lum(c(0)))
    expect(c(null)).toBe(MISSING)
  })
  it('is diverging when negative values occur', () => {
    const c = heatColor([[-0.5, 0.5]])
    expect(c(-0.5)).not.toBe(c(0.5))
    const rgb = c(-0.5).match(/\d+/g)!.map(Number)
    expect(rgb[2]).toBeGreaterThan(rgb[0])
  })
})

describe('pairs, groups, contingency', () => {
  it('sorts pairs by r descending with ranks', () => {
    const s = sortedPairs([{ a: 0, b: 1, r: 0.2 }, { a: 1, b: 0, r: 0.9 }, { a: 2, b: 2, r: null }])
    expect(s.map((p) => p.a)).toEqual([1, 0, 2])
    expect(s.map((p) => p.rank)).toEqual([0, 1, 2])
  })
  it('sorts groups', () => {
    const g = [
      { group: 'b', n: 1, diff: -0.5 },
      { group: 'a', n: 5, diff: 0.1 },
      { group: 'c', n: 3, diff: 0.9 },
    ]
    expect(sortGroups(g).map((x) => x.group)).toEqual(['c', 'b', 'a'])
    expect(sortGroups(g, 'diff').map((x) => x.group)).toEqual(['b', 'a', 'c'])
    expect(sortGroups(g, 'n').map((x) => x.group)).toEqual(['a', 'c', 'b'])
    expect(sortGroups(g, 'group').map((x) => x.group)).toEqual(['a', 'b', 'c'])
  })
  it('groupDiff recomputes a - b', () => {
    expect(groupDiff({ mean_a: 2, mean_b: 3, diff: 1 })).toBe(-1)
    expect(groupDiff({ mean_a: null, mean_b: 3, diff: 0.4 })).toBe(0.4)
  })
  it('contingency totals and shares', () => {
    const c = contingency([[2, 2], [0, 4]])
    expect(c.rows).toEqual([4, 4])
    expect(c.cols).toEqual([2, 6])
    expect(c.share[0]).toEqual([0.5, 0.5])
    expect(c.total).toBe(8)
  })
})

describe('layoutTokens', () => {
  it('wraps when a token would overflow', () => {
    const { boxes, height } = layoutTokens(['aa', 'bbbb', 'c'], 40, 5, 20, 4)
    // widths 14, 24, 9; 14 + 2 + 24 = 40 fits exactly, then 'c' wraps
    expect(boxes.map((b) => [b.x, b.y, b.w])).toEqual([[0, 0, 14], [16, 0, 24], [0, 20, 9]])
    expect(height).toBe(40)
    expect(layoutTokens([], 100).height).toBe(0)
  })
  it('clips a token wider than the line', () => {
    expect(layoutTokens(['x'.repeat(100)], 50, 7).boxes[0].w).toBe(50)
  })
})
