import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import DiscoveryView from '../views/DiscoveryView.vue'
import { state, defaultState } from '../state'
import { catalog } from '../models'

const json = (b: unknown, status = 200) => Promise.resolve(new Response(JSON.stringify(b), { status }))
beforeEach(() => {
  Object.assign(state, defaultState())
  catalog.info.m = { default_stream: 'layer0.fwd.h' } as never
  vi.stubGlobal('fetch', (url: string) => {
    if (url.includes('/discovery')) return json({
      available: ['quotes', 'depth', 'pos'],
      annotations: [
        { name: 'quotes', kind: 'binary', metric: 'auc', top: [{ stream: 'layer0.fwd.c', unit: 5, score: 0.93, effect: 0.43 }, { stream: 'layer0.fwd.h', unit: 1, score: 0.2, effect: -0.3 }],
          probe: { stream: 'layer0.fwd.h', metric: 'accuracy', test_score: 0.95, baseline: 0.8 } },
        { name: 'depth', kind: 'scalar', metric: 'pearson', top: [{ stream: 'layer0.fwd.h', unit: 3, score: -0.7, effect: -0.7 }], probe: null },
      ],
    })
    return json({ error: 'x', fix: 'y' }, 404)
  })
})
afterEach(() => vi.unstubAllGlobals())

describe('DiscoveryView', () => {
  it('lists units per annotation; a row opens the detail view on its stream and unit', async () => {
    const w = mount(DiscoveryView, { props: { model: 'm', side: 'a' } })
    for (let i = 0; i < 6; i++) await flushPromises()
    const rows = w.findAll('[data-test="discovery-row"]')
    expect(rows).toHaveLength(3)
    expect(w.findAll('[data-test="discovery-probe"]')).toHaveLength(1)
    await rows[0].trigger('click')
    expect(state).toMatchObject({ stream: 'layer0.fwd.c', unit: 5, view: 'detail' })
    await rows[1].trigger('click')
    expect(state.stream).toBe('') // the default stream is written as ''
    // unticking an annotation writes the chosen list to the URL state
    await w.find('[data-annotation="depth"] input').trigger('change')
    expect(state.annotations).toEqual(['quotes'])
    w.unmount()
  })
})
