import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import PatternView from '../views/PatternView.vue'
import { state, setState, defaultState } from '../state'
import { catalog } from '../models'
import type { ModelInfo } from '../api'

const STREAM = 'layer0.fwd.h'
const VALUES = [
  [0.9, 0.0, 0.9, 0.0],
  [0.9, 0.8, 0.0, 0.8],
  [0.9, 0.8, 0.9, 0.8],
  [0.0, 0.8, 0.9, 0.0],
  [0.0, 0.0, 0.0, 0.0],
]
const MATCHES = {
  total: 2,
  matches: [
    { doc: 7, start: 4, stop: 6, tokens: ['a', 'b', 'x', 'y', 'c'], context: [2, 1], matched: 2, extra: 0, jaccard: 1,
      counts: [0, 0, 2, 2, 0], tracks: { pos: ['DT', 'NN', 'VB', 'NN', '.'] } },
    { doc: 3, start: 0, stop: 1, tokens: ['z', 'q'], context: [0, 1], matched: 2, extra: 1, jaccard: 0.67,
      counts: [2, 1], tracks: { pos: ['NN', 'IN'] } },
  ],
  length_hist: { lengths: [0, 1, 2], counts: [0, 1, 1] },
}

function info(): ModelInfo {
  return {
    ref: 'm', id: 'x', name: 'm', kind: 'lm', level: 'word', cell: 'lstm', layers: 1, hidden: 4, dataset: 'd',
    split: 'test', splits: ['train', 'valid', 'test'], default_split: 'test', own: false, labels: null,
    streams: [{ name: STREAM, layer: 0, direction: 'fwd', type: 'h', gate: null, units: 4 }],
    default_stream: STREAM, recording: { status: 'ready', tokens: 100, documents: 2, job: null }, has_pos: true, run_id: null,
  }
}

let calls: { url: string; body: unknown }[] = []
function json(body: unknown, status = 200) {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }))
}

beforeEach(() => {
  Object.assign(state, defaultState())
  catalog.info.m = info()
  calls = []
  vi.stubGlobal('fetch', (url: string, init?: RequestInit) => {
    const body = init?.body ? JSON.parse(String(init.body)) : null
    calls.push({ url, body })
    if (url.includes('/documents')) return json({ total: 1, documents: [{ doc: 0, tokens: 5, preview: 'a b c d e' }] })
    if (url.includes('/sentence')) return json({ source: 'corpus', doc: 0, tokens: ['a', 'b', 'c', 'd', 'e'], streams: { [STREAM]: VALUES }, outputs: { loss: null, top: null, probs: null }, glyphs: null })
    if (url.includes('/pattern/select')) return json({ stream: STREAM, units: [1, 3], theta: [0.5, 0.5], doc: 0, tokens: ['b', 'c'], values: [[0.8, 0.8], [0.8, 0.8]] })
    if (url.includes('/pattern/match')) return json(MATCHES)
    return json({ error: 'unknown', fix: '' }, 404)
  })
})
afterEach(() => {
  vi.unstubAllGlobals()
})

async function settle() {
  for (let i = 0; i < 6; i++) await flushPromises()
}

describe('PatternView', () => {
  it('selects from the URL state, matches and lists aligned rows', async () => {
    setState({ doc: 0, start: 1, stop: 3, threshold: 0.5, thkind: 'abs' })
    const w = mount(PatternView, { props: { model: 'm', side: 'a' } })
    await settle()
    expect(w.find('[data-test="pattern-plot"]').exists()).toBe(true)
    expect(w.find('[data-test="threshold"]').attributes('data-value')).toBe('0.5')
    // never a stop past the document's end (the server answers 400)
    const sents = calls.filter((c) => c.url.includes('/sentence'))
    expect(sents.at(-1)!.body).toMatchObject({ doc: 0, start: 0, stop: 5, streams: [STREAM] })
    for (const c of sents) expect((c.body as { stop?: number }).stop ?? 0).toBeLessThanOrEqual(5)
    const sel = calls.find((c) => c.url.includes('/pattern/select'))!
    expect(sel.body).toMatchObject({ stream: STREAM, doc: 0, start: 1, stop: 3, threshold: { kind: 'abs', value: 0.5 } })
    const m = calls.find((c) => c.url.includes('/pattern/match'))!
    expect(m.body).toMatchObject({ units: [1, 3], threshold: { kind: 'abs', value: 0.5 } })
    const rows = w.findAll('[data-test="match-row"]')
    expect(rows).toHaveLength(2)
    expect(w.findAll('[data-test="pattern-unit"]').map((x) => x.attributes('data-unit'))).toEqual(['1', '3'])
    expect(w.findAll('[data-test="length-bin"]')).toHaveLength(2)
    // both matches start in the same column (aligned at the first matched word)
    await rows[1].trigger('click')
    expect(state.view).toBe('detail')
    expect(state.doc).toBe(3)
    w.unmount()
  })

  it('brushing the words sets start/stop in the state', async () => {
    setState({ doc: 0, threshold: 0.5 })
    const w = mount(PatternView, { props: { model: 'm', side: 'a' }, attachTo: document.body })
    await settle()
    const brush = w.find('[data-test="pattern-brush"]')
    const svg = w.find('svg[data-test="pattern-plot"]')
    // plot left margin 44 px, 20 px per token: tokens 1..2 have centres at 44+30, 44+50
    await brush.trigger('pointerdown', { clientX: 44 + 22, clientY: 220, pointerId: 1 })
    await svg.trigger('pointermove', { clientX: 44 + 58, clientY: 220, pointerId: 1 })
    await svg.trigger('pointerup', { pointerId: 1 })
    expect(state.start).toBe(1)
    expect(state.stop).toBe(3)
    expect(state.pdoc).toBe(0)
    w.unmount()
  })

  it('dragging the threshold line writes the threshold', async () => {
    setState({ doc: 0, start: 1, stop: 3, threshold: 0.5, thkind: 'abs' })
    const w = mount(PatternView, { props: { model: 'm', side: 'a' } })
    await settle()
    const svg = w.find('svg[data-test="pattern-plot"]')
    // y domain [0, 0.9] over 200 px below an 8 px top margin: clientY 48 -> 0.8 of the height = 0.72
    await w.find('[data-test="threshold"]').trigger('pointerdown', { clientX: 100, clientY: 108, pointerId: 1 })
    await svg.trigger('pointermove', { clientX: 100, clientY: 48, pointerId: 1 })
    expect(w.find('[data-test="threshold"]').attributes('data-value')).toBe('0.72')
    expect(state.threshold).toBe(0.5) // only committed on release
    await svg.trigger('pointerup', { pointerId: 1 })
    expect(state.threshold).toBe(0.72)
    w.unmount()
  })

  it('selects locally over typed text and matches those units', async () => {
    setState({ text: 'a b c d e', start: 1, stop: 3, threshold: 0.5 })
    const w = mount(PatternView, { props: { model: 'm', side: 'a' } })
    await settle()
    expect(calls.some((c) => c.url.includes('/pattern/select'))).toBe(false)
    const m = calls.find((c) => c.url.includes('/pattern/match'))!
    expect(m.body).toMatchObject({ units: [1, 3] })
    expect(w.find('[data-test="threshold-kind"]').attributes('disabled')).toBeDefined()
    w.unmount()
  })

  it('shows the API error with its fix', async () => {
    vi.stubGlobal('fetch', (url: string) =>
      url.includes('/documents')
        ? json({ total: 1, documents: [{ doc: 0, tokens: 5, preview: 'x' }] })
        : json({ error: 'no such stream', fix: 'pick another stream' }, 404))
    const w = mount(PatternView, { props: { model: 'm', side: 'a' } })
    await settle()
    expect(w.find('[data-test="chart-error"]').text()).toContain('pick another stream')
    w.unmount()
  })
})
