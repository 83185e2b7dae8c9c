import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import CompareView from '../views/CompareView.vue'
import { state, defaultState, setState } from '../state'

const json = (b: unknown, status = 200) => Promise.resolve(new Response(JSON.stringify(b), { status }))
const COMPARE = {
  a: 'a', b: 'b', same_tokens: true,
  loss: { mean_a: 4, mean_b: 4.5, by_word: [{ group: 'the', n: 10, mean_a: 1, mean_b: 2, diff: -1 }, { group: 'cat', n: 3, mean_a: 5, mean_b: 4, diff: 1 }], by_pos: null, by_category: null },
  similarity: { layers_a: ['l0', 'l1'], layers_b: ['l0'], cka: [[0.9], [0.4]], svcca: [[0.8], [0.3]] },
  matching: { pairs: [{ a: 0, b: 1, r: 0.3 }, { a: 1, b: 0, r: 0.9 }], mean_r: 0.6 },
  clusters: { ari: 0.42, table: [[3, 1], [0, 4]] },
}
beforeEach(() => {
  Object.assign(state, defaultState())
  vi.stubGlobal('fetch', (url: string) => {
    if (url.includes('/compare/tokens')) return json({ tokens: ['the', 'cat'], loss_a: [1, 5], loss_b: [2, 4], diff: [-1, 1] })
    if (url.includes('/compare')) return json(COMPARE)
    if (url.includes('/documents')) return json({ total: 1, documents: [{ doc: 0, tokens: 2, preview: 'the cat' }] })
    if (url.endsWith('/api/models')) return json([])
    return json({ error: 'x', fix: 'y' }, 404)
  })
})
afterEach(() => vi.unstubAllGlobals())
const settle = async () => { for (let i = 0; i < 6; i++) await flushPromises() }

describe('CompareView', () => {
  it('explains how to choose model B', async () => {
    setState({ model: 'a' })
    const w = mount(CompareView, { props: { model: 'a', side: 'a' } })
    await settle()
    expect(w.find('[data-test="compare-need-b"]').exists()).toBe(true)
    expect(w.find('[data-test="compare"]').exists()).toBe(false)
    w.unmount()
  })
  it('draws token differences, tables, similarity, matching and clusters', async () => {
    setState({ model: 'a', model_b: 'b', compare: true })
    const w = mount(CompareView, { props: { model: 'a', side: 'a' } })
    await settle()
    expect(w.find('[data-test="compare"]').exists()).toBe(true)
    const toks = w.findAll('[data-test="compare-token"]')
    expect(toks.map((t) => t.attributes('data-diff'))).toEqual(['-1', '1'])
    const fill = (i: number) => toks[i].find('rect').attributes('fill')!.match(/\d+/g)!.map(Number)
    expect(fill(0)[2]).toBeGreaterThan(fill(0)[0]) // A better -> blue
    expect(fill(1)[0]).toBeGreaterThan(fill(1)[2]) // B better -> red
    expect(w.find('[data-test="compare-tally"]').text()).toContain('A better on 1, B better on 1')
    expect(w.findAll('[data-test="compare-group-row"]')).toHaveLength(2)
    expect(w.findAll('[data-test="similarity-cell"]')).toHaveLength(2)
    expect(w.findAll('[data-test="matching-bar"]').map((b) => b.attributes('data-r'))).toEqual(['0.9', '0.3'])
    expect(w.find('[data-test="compare-ari"]').text()).toContain('0.42')
    expect(w.findAll('[data-test="cluster-cell"]')).toHaveLength(4)
    w.unmount()
  })
})
