import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import RadarView from '../views/RadarView.vue'
import { state, defaultState } from '../state'

const urls: string[] = []
const json = (b: unknown, status = 200) => Promise.resolve(new Response(JSON.stringify(b), { status }))
beforeEach(() => {
  Object.assign(state, defaultState())
  urls.length = 0
  vi.stubGlobal('fetch', (url: string) => {
    urls.push(url)
    if (url.includes('/cocluster')) return json({
      stream: 's', k: 2, k_scores: [], score_name: '', gap_name: '', gap_threshold: 1.2, k_rule: 'given', units: [], unit_clusters: [], links: [], n_words: 3, min_count: 5,
      word_clusters: [{ id: 0, words: [{ word: 'the', weight: 1, count: 9, pos: null }] }, { id: 1, words: [{ word: 'run', weight: 1, count: 3, pos: null }] }],
    })
    if (url.includes('/radar')) return json({
      stream: 's', words: ['the', 'run'], dims: [{ unit: 4, label: 'unit 4' }, { unit: 9, label: 'unit 9' }, { unit: 2, label: 'unit 2' }],
      values: [[0.5, -0.5, 0], [1, 0.2, -1]], chosen_by: 'variance across words',
    })
    return json({ error: 'x', fix: 'y' }, 404)
  })
})
afterEach(() => vi.unstubAllGlobals())

describe('RadarView', () => {
  it('defaults to the most frequent word of each cluster and draws one polygon per word', async () => {
    const w = mount(RadarView, { props: { model: 'm', side: 'a' } })
    for (let i = 0; i < 6; i++) await flushPromises()
    const radar = urls.find((u) => u.includes('/radar'))!
    expect(decodeURIComponent(radar)).toContain('words=the,run')
    expect(w.find('[data-test="radar"]').exists()).toBe(true)
    expect(w.findAll('[data-test="radar-polygon"]')).toHaveLength(2)
    expect(w.findAll('[data-test="radar-axis"]')).toHaveLength(3)
    expect(w.findAll('[data-test="radar-word"]').map((c) => c.attributes('data-word'))).toEqual(['the', 'run'])
    // the first typed word replaces the default words (issue 13), the next ones are added
    await w.find('[data-test="radar-word-input"]').setValue('cat')
    await w.find('[data-test="radar-word-input"]').trigger('keydown', { key: 'Enter' })
    expect(state.words).toEqual(['cat'])
    await w.find('[data-test="radar-word-input"]').setValue('dog')
    await w.find('[data-test="radar-word-input"]').trigger('keydown', { key: 'Enter' })
    expect(state.words).toEqual(['cat', 'dog'])
    // clicking an axis opens the unit
    await w.findAll('[data-test="radar-axis"]')[1].trigger('click')
    expect(state.unit).toBe(9)
    expect(state.view).toBe('detail')
    w.unmount()
  })
})
