// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { catalog, streamAllowed, streamFor } from './models'
import type { ModelInfo, StreamInfo } from './api'
import { streamNeed } from './views/registry'

const s = (name: string, stored: boolean | null, words: boolean | null): StreamInfo => ({
  name, layer: 0, direction: 'fwd', type: name.endsWith('.h') ? 'h' : name.endsWith('.c') ? 'c' : 'gate',
  gate: name.includes('gate') ? name.slice(-1) : null, units: 4, stored, word_stats: words,
})

describe('streams a view can show', () => {
  catalog.info.m = {
    streams: [s('layer0.fwd.h', true, true), s('layer0.fwd.c', false, true), s('layer0.fwd.gate.f', false, false)],
    default_stream: 'layer0.fwd.h',
  } as unknown as ModelInfo

  it('offers Memory only streams with per-word statistics, Pattern only stored ones, Detail all', () => {
    expect(streamFor('m', 'layer0.fwd.gate.f', streamNeed('main'))).toBe('layer0.fwd.h')
    expect(streamFor('m', 'layer0.fwd.c', streamNeed('main'))).toBe('layer0.fwd.c')
    expect(streamFor('m', 'layer0.fwd.c', streamNeed('pattern'))).toBe('layer0.fwd.h')
    expect(streamFor('m', 'layer0.fwd.gate.f', streamNeed('detail'))).toBe('layer0.fwd.gate.f')
    expect(streamFor('m', 'layer0.fwd.gate.f', streamNeed('projection', 'trajectory'))).toBe('layer0.fwd.gate.f')
    expect(streamFor('m', 'layer0.fwd.gate.f', streamNeed('projection', 'units'))).toBe('layer0.fwd.h')
  })

  it('allows every stream while the recording is not made (facts unknown)', () => {
    expect(streamAllowed(s('layer0.fwd.gate.f', null, null), 'words')).toBe(true)
    expect(streamAllowed(s('layer0.fwd.gate.f', null, null), 'stored')).toBe(true)
  })
})

describe('model options', () => {
  it('labels an epoch checkpoint once: "brown-lstm · epoch 1", a tagged one with its tag', async () => {
    const { modelOptions } = await import('./models')
    const m = (id: string, tag: string | null, epoch: number | null) =>
      ({ id, name: 'brown-lstm', kind: 'lm', tag, epoch, run_id: 1, config: {}, metrics: {} })
    const groups = modelOptions([m('a1', 'last', 3), m('b2', 'epoch', 1), m('c3', 'best', 2)])
    const labels = groups.flatMap((g) => g.options.map((o) => o.label))
    expect(labels).toContain('brown-lstm · epoch 1')
    expect(labels).toContain('brown-lstm · last · epoch 3')
    expect(labels).toContain('brown-lstm (best · epoch 2)')
    expect(labels.some((l) => l.includes('epoch · epoch'))).toBe(false)
  })
})
