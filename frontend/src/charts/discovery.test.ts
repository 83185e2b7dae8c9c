import { describe, it, expect } from 'vitest'
import { scoreBar, probeGain, metricName, discoveryRows } from './discovery'

describe('scoreBar', () => {
  it('draws AUC from 0.5', () => {
    expect(scoreBar('auc', 0.9)).toEqual({ x0: 0.5, x1: 0.9, mid: 0.5, sign: 1 })
    const lo = scoreBar('auc', 0.2)
    expect(lo.x0).toBeCloseTo(0.2)
    expect(lo.x1).toBe(0.5)
    expect(lo.sign).toBe(-1)
  })
  it('draws correlations from 0 on a -1..1 cell', () => {
    const b = scoreBar('pearson', -0.6)
    expect(b.x0).toBeCloseTo(0.2)
    expect(b.x1).toBe(0.5)
    expect(b.sign).toBe(-1)
    expect(scoreBar('spearman', 2).x1).toBe(1)
  })
  it('empty for null', () => {
    expect(scoreBar('auc', null).sign).toBe(0)
  })
})

describe('probe and rows', () => {
  it('gain over baseline', () => {
    expect(probeGain({ test_score: 0.9, baseline: 0.6, metric: 'accuracy' })?.gain).toBeCloseTo(0.3)
    expect(probeGain({ test_score: -0.2, baseline: 0, metric: 'r2' })?.score).toBe(0)
    expect(probeGain(null)).toBeNull()
  })
  it('names and rows', () => {
    expect(metricName('auc')).toBe('AUC')
    const rows = discoveryRows({ annotations: [{ name: 'quotes', kind: 'binary', metric: 'auc', top: [{ stream: 's', unit: 3, score: 0.9, effect: 0.4 }] }] })
    expect(rows).toEqual([{ annotation: 'quotes', kind: 'binary', metric: 'auc', rank: 1, stream: 's', unit: 3, score: 0.9, effect: 0.4 }])
  })
})
