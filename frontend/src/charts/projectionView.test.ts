import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import ProjectionView from '../views/ProjectionView.vue'
import { state, defaultState, setState } from '../state'

const json = (b: unknown, status = 200) => Promise.resolve(new Response(JSON.stringify(b), { status }))
const urls: string[] = []
beforeEach(() => {
  Object.assign(state, defaultState())
  urls.length = 0
  vi.stubGlobal('fetch', (url: string) => {
    urls.push(url)
    if (url.includes('/cocluster')) return json({
      stream: 's', k: 2, k_scores: [], score_name: '', gap_name: '', gap_threshold: 1.2, k_rule: 'given', unit_clusters: [], word_clusters: [], links: [], n_words: 0, min_count: 5,
      units: [{ unit: 0, cluster: 1 }, { unit: 1, cluster: 0 }, { unit: 2, cluster: 1 }],
    })
    if (url.includes('what=trajectory')) return json({ what: 'trajectory', method: 'pca', explained: [0.6, 0.2],
      points: [{ x: 0, y: 0, label: 'the', group: null }, { x: 1, y: 1, label: 'cat', group: null }, { x: 2, y: 0, label: 'sat', group: null }] })
    if (url.includes('/projection')) return json({ what: 'units', method: 'pca', explained: [0.5, 0.3],
      points: [{ x: 0, y: 0, label: '0', group: null }, { x: 1, y: 2, label: '1', group: null }, { x: -1, y: 1, label: '2', group: null }] })
    return json({ error: 'x', fix: 'y' }, 404)
  })
})
afterEach(() => vi.unstubAllGlobals())
const settle = async () => { for (let i = 0; i < 6; i++) await flushPromises() }

describe('ProjectionView', () => {
  it('colours units by co-cluster; clicking one opens the detail view', async () => {
    const w = mount(ProjectionView, { props: { model: 'm', side: 'a' } })
    await settle()
    const pts = w.findAll('[data-test="point"]')
    expect(pts).toHaveLength(3)
    expect(pts.map((p) => p.attributes('data-group'))).toEqual(['1', '0', '1'])
    await pts[2].trigger('click')
    expect(state.unit).toBe(2)
    expect(state.view).toBe('detail')
    w.unmount()
  })
  it('asks for a sentence, then draws its trajectory', async () => {
    setState({ what: 'trajectory', method: 'tsne' })
    const w = mount(ProjectionView, { props: { model: 'm', side: 'a' } })
    await settle()
    expect(w.find('[data-test="projection-need-text"]').exists()).toBe(true)
    setState({ text: 'the cat sat' })
    await settle()
    expect(urls.some((u) => u.includes('what=trajectory') && u.includes('method=tsne') && u.includes('text=the%20cat%20sat'))).toBe(true)
    expect(w.findAll('[data-test="point"]').map((p) => p.text())).toEqual(['the', 'cat', 'sat'])
    expect(w.find('path.traj').attributes('d')).toMatch(/^M.*L.*L/)
    w.unmount()
  })
})
