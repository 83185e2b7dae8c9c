import { describe, it, expect } from 'vitest'
import {
  radarScale, axisAngle, polar, radarPolygon, polygonPath, radarRings, tableMaxAbs, labelAnchor,
  defaultRadarWords, parseWords, parseUnits,
} from './radar'

describe('radarScale', () => {
  it('maps -m, 0, m to inner, zero ring, outer', () => {
    const g = radarScale(2, 100, 20)
    expect(g.radius(-2)).toBeCloseTo(20)
    expect(g.radius(0)).toBeCloseTo(60)
    expect(g.zero).toBeCloseTo(60)
    expect(g.radius(2)).toBeCloseTo(100)
    expect(g.radius(1)).toBeCloseTo(80)
  })
  it('draws negative values inside the zero ring and clamps', () => {
    const g = radarScale(1, 100, 10)
    expect(g.radius(-0.5)).toBeLessThan(g.zero)
    expect(g.radius(5)).toBe(100)
    expect(g.radius(-5)).toBe(10)
  })
  it('puts null/NaN and all-zero tables on the zero ring', () => {
    expect(radarScale(1, 100, 0).radius(null)).toBe(50)
    expect(radarScale(1, 100, 0).radius(NaN)).toBe(50)
    const flat = radarScale(0, 100, 0)
    expect(flat.radius(3)).toBe(50)
    expect(radarRings(flat)).toEqual([{ value: 0, r: 50, zero: true }])
  })
})

describe('axes and polygons', () => {
  it('first axis points up, then clockwise', () => {
    expect(axisAngle(0, 4)).toBeCloseTo(-Math.PI / 2)
    const [x0, y0] = polar(0, 4, 10)
    expect(x0).toBeCloseTo(0)
    expect(y0).toBeCloseTo(-10)
    const [x1, y1] = polar(1, 4, 10)
    expect(x1).toBeCloseTo(10)
    expect(y1).toBeCloseTo(0)
  })
  it('builds one vertex per dim and a closed path', () => {
    const g = radarScale(1, 100, 0)
    const pts = radarPolygon([1, 0, -1, 0], g)
    expect(pts).toHaveLength(4)
    expect(pts[0][1]).toBeCloseTo(-100)
    expect(pts[2][1]).toBeCloseTo(0) // -1 -> centre
    const p = polygonPath(pts)
    expect(p.startsWith('M')).toBe(true)
    expect(p.endsWith('Z')).toBe(true)
    expect(p.split('L')).toHaveLength(4)
    expect(polygonPath([])).toBe('')
  })
  it('rings are symmetric with one zero ring', () => {
    const rings = radarRings(radarScale(4, 100, 0), 2)
    expect(rings.map((r) => r.value)).toEqual([-4, -2, 0, 2, 4])
    expect(rings.filter((r) => r.zero)).toHaveLength(1)
  })
  it('label anchors sit outside', () => {
    expect(labelAnchor(0, 4)).toBe('middle')
    expect(labelAnchor(1, 4)).toBe('start')
    expect(labelAnchor(3, 4)).toBe('end')
  })
  it('tableMaxAbs skips null', () => {
    expect(tableMaxAbs([[1, null], [-3, 2]])).toBe(3)
    expect(tableMaxAbs([])).toBe(0)
  })
})

describe('word and unit input', () => {
  it('takes the most frequent word of each cluster first', () => {
    const clusters = [
      { words: [{ word: 'a', count: 1 }, { word: 'the', count: 9 }] },
      { words: [{ word: 'run', count: 5 }, { word: 'go', count: 7 }] },
    ]
    expect(defaultRadarWords(clusters, 3)).toEqual(['the', 'go', 'a'])
    expect(defaultRadarWords(clusters, 10)).toEqual(['the', 'go', 'a', 'run'])
    expect(defaultRadarWords([], 3)).toEqual([])
  })
  it('parses chips and units', () => {
    expect(parseWords(' the, of  the\tcat ')).toEqual(['the', 'of', 'cat'])
    expect(parseUnits('3, 7 x 12 3 -1')).toEqual([3, 7, 12])
  })
})
