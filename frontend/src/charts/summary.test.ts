// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { bestRows, checkpointX, curvesByKey, dynamicsSeries, lowerIsBetter, metricsTable, normalizeRows, runCurves, shortStreamNames } from './summary'
import type { Metrics, Training, TrainingDynamics } from '../api'

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

  it('reads checkpoint epochs from labels, else numbers them', () => {
    expect(checkpointX(['epoch 1', 'epoch 2', 'epoch 4 (best)'])).toEqual([1, 2, 4])
    expect(checkpointX(['epoch 2', 'epoch 2 (best)'])).toEqual([1, 2])
    expect(checkpointX(['a', 'b'])).toEqual([1, 2])
  })

  it('shortens stream names sharing a layer prefix only', () => {
    expect(shortStreamNames(['layer0.fwd.h', 'layer0.fwd.c'])).toEqual({ 'layer0.fwd.h': 'h', 'layer0.fwd.c': 'c' })
    expect(shortStreamNames(['layer0.fwd.h', 'layer1.fwd.h'])['layer1.fwd.h']).toBe('layer1.fwd.h')
  })

  it('turns checkpoint dynamics into series and CSV rows', () => {
    const d: TrainingDynamics = {
      labels: ['epoch 1', 'epoch 2 (best)'], tokens: 300,
      saturation: { 'layer0.fwd.gate.f': { left: [0.1, 0.2], right: [0.3, null] } },
      mean_abs_delta: { 'layer0.fwd.h': [0.5, 0.4], 'layer0.fwd.c': [0.9, 0.8] },
      cka_to_final: { 'layer0.fwd.h': [0.7, 1], 'layer0.fwd.c': [0.6, 1] },
    }
    const s = dynamicsSeries(d)
    expect(s.xLabel).toBe('epoch')
    expect(s.saturation.map((x) => [x.name, x.side])).toEqual([['gate.f left', 'left'], ['gate.f right', 'right']])
    expect(s.saturation[1].points).toEqual([{ x: 1, y: 0.3 }, { x: 2, y: null }])
    expect(s.delta.map((x) => x.name)).toEqual(['c', 'h'])
    expect(s.cka[1].points[1]).toEqual({ x: 2, y: 1 })
    expect(s.rows).toHaveLength(6)
    expect(s.rows[0]).toMatchObject({ checkpoint: 'epoch 1', stream: 'layer0.fwd.gate.f', saturation_left: 0.1, cka_to_final: null })
    expect(dynamicsSeries(null).rows).toEqual([])
  })

  it('turns run metrics into curves sorted by step', () => {
    const c = runCurves({ run_id: 1, series: { valid: { loss: [{ step: 20, epoch: 2, value: 1 }, { step: 10, epoch: 1, value: 2 }] } } })
    expect(c).toEqual([{ split: 'valid', key: 'loss', points: [{ step: 10, epoch: 1, value: 2 }, { step: 20, epoch: 2, value: 1 }] }])
  })
})

describe('classifier slices and confusion labels', () => {
  it('labels an empty slice "no data", not 0 %, and a full one with its whole n', async () => {
    const { sliceLabel } = await import('./summary')
    expect(sliceLabel({ n: 0, accuracy: 0 })).toBe('no data · n 0')
    expect(sliceLabel({ n: 0, accuracy: null })).toBe('no data · n 0')
    expect(sliceLabel({ n: 132, accuracy: 0.5 })).toBe('50.0 % · n 132')
  })
  it('leaves room for the longest label', async () => {
    const { labelRoom } = await import('./summary')
    expect(labelRoom(['pos', 'negative'])).toBeGreaterThan(labelRoom(['pos', 'neg']))
  })
})
