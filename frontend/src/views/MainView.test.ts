import { describe, it, expect, vi, afterEach } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import MainView from './MainView.vue'
import { catalog } from '../models'
import { state, defaultState } from '../state'
import type { Cocluster, ModelInfo } from '../api'

const info = {
  ref: 'm', id: 'x', name: 'm', kind: 'lm', level: 'word', cell: 'lstm', layers: 1, hidden: 6, dataset: 'brown',
  split: 'test', own: false, labels: null, default_stream: 'layer0.fwd.h', has_pos: true, run_id: 1,
  streams: [{ name: 'layer0.fwd.h', layer: 0, direction: 'fwd', type: 'h', gate: null, units: 6 }],
  recording: { status: 'ready', tokens: 100, documents: 2, job: null },
} as ModelInfo

const co: Cocluster = {
  stream: 'layer0.fwd.h', k: 2, k_scores: [{ k: 2, score: 0.3, gap: 2.5 }, { k: 3, score: 0.2, gap: 1.05 }],
  score_name: 'bipartite modularity', gap_name: 'spectral gap σk/σk+1', gap_threshold: 1.2, k_rule: 'spectral gap',
  units: [0, 1, 2, 3, 4, 5].map((u) => ({ unit: u, cluster: u % 2 })),
  unit_clusters: [{ id: 0, units: [0, 2, 4] }, { id: 1, units: [1, 3, 5] }],
  word_clusters: [
    { id: 0, words: [{ word: 'the', weight: 1, count: 50, pos: 'AT' }, { word: 'a', weight: 0.5, count: 20, pos: 'AT' }] },
    { id: 1, words: [{ word: 'ran', weight: 0.8, count: 5, pos: 'VBD' }] },
  ],
  links: [[0.9, -0.2], [-0.5, 0.7]], n_words: 3, min_count: 5,
}

function json(body: unknown, status = 200) {
  return Promise.resolve(new Response(JSON.stringify(body), { status }))
}

afterEach(() => {
  vi.unstubAllGlobals()
  Object.assign(state, defaultState())
})

describe('MainView', () => {
  it('draws chips, cells, bands and clouds, and links clicks to word / unit requests', async () => {
    catalog.info.m = info
    const calls: string[] = []
    vi.stubGlobal('fetch', vi.fn((url: string) => {
      calls.push(url)
      if (url.includes('/cocluster')) return json(co)
      if (url.includes('/word')) return json({ word: 'the', count: 50, response: [1, -1, 0.5, -0.5, 0, null], std: [], pos: 'AT' })
      if (url.includes('/unit')) return json({ unit: 3, stream: 'layer0.fwd.h', positive: [{ word: 'ran', mean: 0.4, std: 0.1, count: 5, q: null }], negative: [], histogram: { edges: [-1, 0, 1], counts: [3, 4] }, mean: 0, std: 1, cluster: 1 })
      return json({ error: 'no', fix: 'no' }, 404)
    }))
    const w = mount(MainView, { props: { model: 'm', side: 'a' }, attachTo: document.body })
    await flushPromises()
    await new Promise((r) => setTimeout(r, 0))
    await flushPromises()
    expect(calls[0]).toBe('/api/models/m/cocluster?stream=layer0.fwd.h')
    expect(w.findAll('[data-test="chip"]')).toHaveLength(2)
    expect(w.findAll('[data-test="unit-cell"]').map((c) => c.attributes('data-unit'))).toEqual(['0', '2', '4', '1', '3', '5'])
    const bands = w.findAll('[data-test="band"]')
    expect(bands.length).toBe(4) // all |links| >= 0.2 * 0.9
    expect(w.findAll('[data-test="cloud-word"]').map((c) => c.attributes('data-word'))).toContain('the')

    await w.find('[data-test="cloud-word"][data-word="the"]').trigger('click')
    expect(state.word).toBe('the')
    await flushPromises()
    expect(calls.some((u) => u.includes('/word?stream=layer0.fwd.h&word=the'))).toBe(true)
    await flushPromises()
    // cells are now coloured by response: unit 0 (+1) red-ish, unit 1 (-1) blue-ish
    const fill = (u: number) => w.find(`[data-test="unit-cell"][data-unit="${u}"]`).attributes('fill')!
    expect(fill(0)).not.toBe(fill(1))

    await w.find('[data-test="unit-cell"][data-unit="3"]').trigger('click')
    expect(state.unit).toBe(3)
    await flushPromises()
    await flushPromises()
    expect(w.find('[data-test="unit-words"]').exists()).toBe(true)
    expect(w.find('[data-test="histogram"]').exists()).toBe(true)

    // the curve drawn is the one of the rule that chose k, with its threshold, and the rule is named
    expect(w.find('[data-test="k-rule"]').text()).toContain('k by spectral gap · spectral gap σk/σk+1 2.5')
    expect(w.find('[data-test="k-threshold"]').exists()).toBe(true)
    expect(w.find('[data-test="k-score"][data-k="2"] title').text()).toBe('k = 2: spectral gap σk/σk+1 2.5')

    await w.find('[data-test="main-k"]').setValue(5)
    await w.find('[data-test="main-k"]').trigger('change')
    expect(state.k).toBe(5)
    w.unmount()
  })

  it('draws the modularity curve, without a threshold, when no k has a spectral gap', async () => {
    catalog.info.m = info
    vi.stubGlobal('fetch', vi.fn((url: string) =>
      url.includes('/cocluster') ? json({ ...co, k_rule: 'bipartite modularity (no spectral gap)' }) : json({ error: 'no', fix: 'no' }, 404)))
    const w = mount(MainView, { props: { model: 'm', side: 'a' }, attachTo: document.body })
    for (let i = 0; i < 4; i++) await flushPromises()
    expect(w.find('[data-test="k-rule"]').text()).toContain('k by bipartite modularity (no spectral gap) · bipartite modularity 0.3')
    expect(w.find('[data-test="k-threshold"]').exists()).toBe(false)
    expect(w.find('[data-test="k-score"][data-k="3"] title').text()).toBe('k = 3: bipartite modularity 0.2')
    w.unmount()
  })

  it('shows the error and its fix', async () => {
    catalog.info.m = info
    vi.stubGlobal('fetch', vi.fn(() => json({ error: 'unknown stream x', fix: 'choose one of layer0.fwd.h' }, 404)))
    const w = mount(MainView, { props: { model: 'm', side: 'a' } })
    await flushPromises()
    await flushPromises()
    expect(w.find('[data-test="chart-error"]').text()).toContain('unknown stream x')
    expect(w.find('[data-test="chart-error"]').text()).toContain('choose one of')
    w.unmount()
  })
})
