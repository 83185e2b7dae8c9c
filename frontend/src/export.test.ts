import { describe, it, expect } from 'vitest'
import { csvField, serializeSvg, slug, tabular, toCsv } from './export'

describe('CSV', () => {
  it('quotes fields with commas, quotes and newlines; blanks null and NaN', () => {
    expect(csvField('a,b')).toBe('"a,b"')
    expect(csvField('say "hi"')).toBe('"say ""hi"""')
    expect(csvField('x\ny')).toBe('"x\ny"')
    expect(csvField(null)).toBe('')
    expect(csvField(NaN)).toBe('')
    expect(csvField(1.5)).toBe('1.5')
    expect(csvField([1, 2])).toBe('"[1,2]"')
  })

  it('writes objects with the union of their keys as header', () => {
    expect(toCsv([{ word: 'the', mean: 0.5 }, { word: ',', std: 1 }])).toBe('word,mean,std\nthe,0.5,\n",",,1\n')
  })

  it('writes arrays of arrays with an optional header', () => {
    expect(toCsv([[1, 2], [3, null]], ['a', 'b'])).toBe('a,b\n1,2\n3,\n')
  })

  it('finds the table inside a response object', () => {
    expect(tabular({ total: 2, documents: [{ doc: 0 }, { doc: 1 }] })).toEqual([{ doc: 0 }, { doc: 1 }])
    expect(tabular([0.1, 0.2])).toEqual([{ index: 0, value: 0.1 }, { index: 1, value: 0.2 }])
  })

  it('makes file-name slugs', () => {
    expect(slug('Training & validation curves')).toBe('training-validation-curves')
    expect(slug('!!!')).toBe('chart')
  })
})

describe('SVG export', () => {
  it('serialises with namespace, size and a white background', () => {
    document.body.innerHTML = '<svg width="120" height="80"><circle r="5" class="dot"></circle></svg>'
    const svg = document.querySelector('svg') as SVGSVGElement
    const text = serializeSvg(svg)
    expect(text).toContain('xmlns="http://www.w3.org/2000/svg"')
    expect(text).toContain('width="120"')
    expect(text).toMatch(/<rect[^>]*fill="#ffffff"/)
    expect(text).toContain('<circle')
    // the original is untouched
    expect(svg.querySelector('rect')).toBeNull()
  })
})
