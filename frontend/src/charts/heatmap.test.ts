// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { cellAt, heatColor, heatGeometry, meanOver, mostActiveUnit, rowOrder } from './heatmap'
import { sentenceRequest } from './sentenceSource'

describe('heatmap geometry', () => {
  it('fits cells into the width and height and finds the cell under a point', () => {
    const g = heatGeometry(50, 200, 640, 400, 40, 6, 60)
    expect(g.cellW).toBe(11) // floor((640-44)/50)
    expect(g.cellH).toBe(2)
    expect(g.width).toBe(40 + 50 * 11 + 4)
    expect(cellAt(g, 40 + 11 * 3 + 1, 6 + 2 * 7 + 1)).toEqual({ t: 3, row: 7 })
    expect(cellAt(g, 39, 10)).toBeNull()
    expect(cellAt(g, 40 + 11 * 50, 10)).toBeNull()
  })

  it('chooses sequential colours for gates in [0,1] and diverging for signed states', () => {
    expect(heatColor([[0.1, 0.9], [0, 1]]).mode).toBe('sequential')
    expect(heatColor([[0.1, 0.9], [0, 1]]).max).toBe(1)
    const d = heatColor([[-3, 1], [null, 2]])
    expect(d.mode).toBe('diverging')
    expect(d.max).toBeGreaterThanOrEqual(2)
  })

  it('groups rows by cluster label, stable within a cluster', () => {
    expect(rowOrder(5, [1, 0, 1, 0, 2])).toEqual([1, 3, 0, 2, 4])
    expect(rowOrder(3, null)).toEqual([0, 1, 2])
    expect(rowOrder(3, [0])).toEqual([0, 1, 2])
  })

  it('averages over units skipping nulls and picks the most variable unit', () => {
    expect(meanOver([[1, 3, null], [null, null, null]], [0, 1, 2])).toEqual([2, null])
    expect(mostActiveUnit([[0, 5, 1], [0, -5, 1], [0, 5, 1]])).toBe(1)
    expect(mostActiveUnit([])).toBeNull()
  })
})

describe('sentence request', () => {
  it('uses the typed text first, else a window of a document', () => {
    expect(sentenceRequest({ text: ' hi ', doc: 3, k: null }, 's', ['s'])).toEqual({ stream: 's', streams: ['s'], text: ' hi ' })
    expect(sentenceRequest({ text: '', doc: 7, k: 5 }, 's', ['s', 't'], 120, 60)).toEqual({
      stream: 's', streams: ['s', 't'], k: 5, doc: 7, start: 120, stop: 180,
    })
    // no stop: the server clips the default span to the document
    expect(sentenceRequest({ text: '', doc: 4, k: null }, 's', ['s'], 200)).toEqual({ stream: 's', streams: ['s'], doc: 4, start: 200 })
    // no doc chosen: the fallback (first document of the recording), or nothing yet
    expect(sentenceRequest({ text: '', doc: null, k: null }, 's', ['s'], 0, undefined, 20)).toMatchObject({ doc: 20, start: 0 })
    expect(sentenceRequest({ text: '', doc: null, k: null }, 's', ['s'])).toBeNull()
  })
})
