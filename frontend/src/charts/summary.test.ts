// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { bestRows, curvesByKey, lowerIsBetter, metricsTable, normalizeRows } from './summary'
import type { Metrics, Training } from '../api'

describe('summary shaping', () => {
  it('groups curves by key, loss first, epoch as x when present', () => {
    const t: Training = {
      run_id: 1, dynamics: null,
      curves: [
        { split: 'valid', key: 'accuracy', points: [{ step: 10, epoch: 1, value: 0.5 }] },
        { split: 'train', key: 'loss', points: [{ step: 10, epoch: null, value: 2 }] },
        { split: 'valid', key: 'loss', points: [{ step: 10, epoch: 1, value: 2.5 }] },
        { split: 'train', key: 'epoch_tokens_per_s', points: [{ step: 10, epoch: 1, value: 9000 }] },
      ],
    }
    const g = curvesByKey(t)
    expect(g.map((x) => x.key)).toEqual(['loss', 'accuracy'])
    expect(g[0].series.map((s) => s.split)).toEqual(['train', 'valid'])
    expect(g[0].series[0].points[0]).toEqual({ x: 10, y: 2 })
    expect(g[0].series[1].points[0]).toEqual({ x: 1, y: 2.5 })
    expect(curvesByKey(null)).toEqual([])
  })

  it('builds a metrics table against baselines and marks the best per column', () => {
    const m = {
      kind: 'lm', split: 'test', confusion: null, labels: null, calibration: null,
      metrics: { ppl: 140, top1: 0.21, n: 5, note: 'x' } as unknown as Record<string, number>,
      baselines: [{ name: 'unigram', metrics: { ppl: 600, top1: 0.05 } }, { name: 'kneser-ney 3', metrics: { ppl: 130 } }],
    } as Metrics
    const tbl = metricsTable(m)
    expect(tbl.columns).toEqual(['ppl', 'top1', 'n'])
    expect(tbl.rows[2].values).toEqual([130, null, null])
    expect(bestRows(tbl)).toEqual([2, 0, null])
    expect(lowerIsBetter('ppl')).toBe(true)
    expect(lowerIsBetter('accuracy')).toBe(false)
  })

  it('normalises confusion rows', () => {
    expect(normalizeRows([[3, 1], [0, 0]])).toEqual([[0.75, 0.25], [0, 0]])
  })
})
