// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { clusterColor, divergingScale, maxAbs, MISSING, posGroup, sequentialScale, textOn } from './colors'
import { rgb } from 'd3'

describe('colour scales', () => {
  it('diverging: negative is blue, positive red, zero near white, clamped', () => {
    const c = divergingScale(2)
    const neg = rgb(c(-2)), pos = rgb(c(2)), zero = rgb(c(0))
    expect(neg.b).toBeGreaterThan(neg.r)
    expect(pos.r).toBeGreaterThan(pos.b)
    expect(Math.min(zero.r, zero.g, zero.b)).toBeGreaterThan(230)
    expect(c(10)).toBe(c(2))
    expect(c(null)).toBe(MISSING)
    expect(c(NaN)).toBe(MISSING)
  })

  it('diverging with no range gives white rather than NaN colours', () => {
    const c = divergingScale(0)
    expect(rgb(c(0.5)).r).toBeGreaterThan(240)
  })

  it('sequential gets darker with the value', () => {
    const c = sequentialScale(1)
    const lum = (v: number) => { const x = rgb(c(v)); return x.r + x.g + x.b }
    expect(lum(1)).toBeLessThan(lum(0.5))
    expect(lum(0.5)).toBeLessThan(lum(0))
  })

  it('maxAbs walks nested arrays, skips nulls, and supports a quantile', () => {
    expect(maxAbs([[1, -5], [null, 2]])).toBe(5)
    expect(maxAbs([])).toBe(0)
    const xs = Array.from({ length: 101 }, (_, i) => i)
    expect(maxAbs(xs, 0.9)).toBe(90)
  })

  it('categorical and POS helpers', () => {
    expect(clusterColor(0)).not.toBe(clusterColor(1))
    expect(clusterColor(20)).toBe(clusterColor(0))
    expect(clusterColor(null)).toBe('#999')
    expect(posGroup('NNS')).toBe('NOUN')
    expect(posGroup('VBD')).toBe('VERB')
    expect(posGroup('NOUN')).toBe('NOUN')
    expect(posGroup(',')).toBe('PUNCT')
    expect(posGroup(null)).toBe('OTHER')
    expect(textOn('#000000')).toBe('#fff')
    expect(textOn('#ffffff')).toBe('#222')
  })
})

describe('memory view cluster colours beside parts of speech', () => {
  it('use no part-of-speech colour while the words are coloured by part of speech', async () => {
    const { clusterColorBeside, POS_COLORS, CLUSTER_PALETTE } = await import('./colors')
    const pos = new Set(Object.values(POS_COLORS).map((c) => c.toLowerCase()))
    for (let id = 0; id < 20; id++) expect(pos.has(clusterColorBeside(id, true).toLowerCase())).toBe(false)
    expect(clusterColorBeside(3, false)).toBe(CLUSTER_PALETTE[3])
  })
})
