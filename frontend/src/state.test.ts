// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { decodeState, defaultState, encodeState, parseStream, streamName } from './state'

describe('URL state', () => {
  it('encodes the default state as an empty query', () => {
    expect(encodeState(defaultState())).toBe('')
  })

  it('round-trips every kind of field', () => {
    const s = defaultState()
    Object.assign(s, {
      view: 'pattern', model: 'brown-lstm', model_b: '1c1879c4b156b04c', compare: true,
      stream: 'layer0.fwd.gate.f', k: 7, word: 'a,b & c', unit: 0, doc: 12, text: 'hello world?',
      start: 3, stop: 9, threshold: -0.25, thkind: 'pct', units: [4, 0, 17], words: ['x,y', 'z%2C'],
      extra: { foo: 'bar' },
    })
    const qs = encodeState(s)
    expect(qs.startsWith('?')).toBe(true)
    expect(decodeState(qs)).toEqual(s)
  })

  it('holds the chosen split, and leaves the default split out of the URL', () => {
    const s = { ...defaultState(), model: 'm', split: 'valid' }
    expect(encodeState(s)).toBe('?model=m&split=valid')
    expect(decodeState('?model=m&split=valid').split).toBe('valid')
    expect(encodeState({ ...s, split: '' })).toBe('?model=m')
  })

  it('keeps unit 0 (a falsy value different from the default null)', () => {
    const s = defaultState()
    s.unit = 0
    expect(encodeState(s)).toBe('?unit=0')
  })

  it('falls back to defaults for malformed values', () => {
    const s = decodeState('?k=abc&unit=1.5&threshold=x&thkind=weird&units=1,a&compare=0&color=no')
    const d = defaultState()
    expect(s.k).toBe(d.k)
    expect(s.unit).toBe(d.unit)
    expect(s.threshold).toBe(d.threshold)
    expect(s.thkind).toBe('abs')
    expect(s.units).toEqual([])
    expect(s.compare).toBe(false)
    expect(s.color).toBe('unit')
  })

  it('reads the pattern and radar keys of older URLs (once kept in extra) as fields', () => {
    const s = decodeState('?view=radar&pdoc=4&rdims=3,0,12&rn=12')
    expect(s.pdoc).toBe(4)
    expect(s.rdims).toEqual([3, 0, 12])
    expect(s.rn).toBe(12)
    expect(s.extra).toEqual({})
    expect(encodeState(s)).toBe('?view=radar&pdoc=4&rdims=3%2C0%2C12&rn=12')
    expect(encodeState(decodeState('?rn=8'))).toBe('')
  })

  it('drops an access token from shared URLs', () => {
    const s = decodeState('?token=secret&view=detail')
    expect(s.extra).toEqual({})
    expect(encodeState(s)).toBe('?view=detail')
  })

  it('parses and builds stream names', () => {
    expect(parseStream('layer1.bwd.gate.f')).toEqual({ layer: 1, direction: 'bwd', kind: 'gate.f' })
    expect(parseStream('nonsense')).toBeNull()
    expect(streamName({ layer: 0, direction: 'fwd', kind: 'c' })).toBe('layer0.fwd.c')
  })
})

describe('history steps', () => {
  it('pushes view, model and compare changes, not the default model chosen at load nor other fields', async () => {
    const { isHistoryStep } = await import('./state')
    expect(isHistoryStep('?model=a', '?view=summary&model=a')).toBe(true)
    expect(isHistoryStep('?model=a', '?model=b')).toBe(true)
    expect(isHistoryStep('?model=a', '?model=a&compare=1')).toBe(true)
    expect(isHistoryStep('', '?model=a')).toBe(false)
    expect(isHistoryStep('?model=a&compare=1', '?model=a&compare=1&model_b=b')).toBe(false)
    expect(isHistoryStep('?model=a', '?model=a&word=the')).toBe(false)
    expect(isHistoryStep('?model=a&unit=3', '?model=a&unit=4&threshold=0.5')).toBe(false)
  })
})
