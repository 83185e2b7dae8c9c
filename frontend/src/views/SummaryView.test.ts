import { describe, it, expect, vi, afterEach } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import SummaryView from './SummaryView.vue'
import { catalog } from '../models'
import { jobsStore } from '../jobs'
import type { ModelInfo, Training } from '../api'

const info = {
  ref: 'm', id: 'x', name: 'm', kind: 'lm', level: 'word', cell: 'rnn', layers: 1, hidden: 3, dataset: 'lines',
  split: 'test', splits: ['train', 'valid', 'test'], default_split: 'test', own: false, labels: null, default_stream: 'layer0.fwd.h', has_pos: false, run_id: 7, streams: [],
  recording: { status: 'ready', tokens: 10, documents: 1, job: null },
} as ModelInfo
const curves: Training['curves'] = [{ split: 'valid', key: 'loss', points: [{ step: 1, epoch: 1, value: 2 }, { step: 2, epoch: 2, value: 1 }] }]
const json = (body: unknown, status = 200) => Promise.resolve(new Response(JSON.stringify(body), { status }))

function stub(training: Training, urls: string[] = []) {
  vi.stubGlobal('fetch', vi.fn((url: string) => {
    urls.push(url)
    if (url.endsWith('/training')) return json(training)
    if (url.includes('/api/runs/7/metrics')) return json({ run_id: 7, series: { train: { loss: [{ step: 1, epoch: 1, value: 3 }] } } })
    if (url.endsWith('/metrics')) return json({ kind: 'lm', split: 'test', metrics: { ppl: 3 }, baselines: [], confusion: null, labels: null, calibration: null })
    if (url.endsWith('/errors')) return json({ kind: 'lm', level: 'word', total: 1, errors: 0, categories: [], reference: null })
    return json({ error: 'x', fix: '' }, 404)
  }))
}

afterEach(() => {
  vi.unstubAllGlobals()
  jobsStore.jobs = []
  catalog.info = {}
})

describe('SummaryView', () => {
  it('draws the checkpoint dynamics', async () => {
    catalog.info.m = info
    stub({
      run_id: 7, curves, dynamics: {
        labels: ['epoch 1', 'epoch 2 (best)'], tokens: 30, saturation: {},
        mean_abs_delta: { 'layer0.fwd.h': [0.3, 0.2] }, cka_to_final: { 'layer0.fwd.h': [0.8, 1] },
      },
    })
    const w = mount(SummaryView, { props: { model: 'm', side: 'a' } })
    await flushPromises()
    expect(w.find('[data-test="dynamics"]').exists()).toBe(true)
    expect(w.findAll('[data-test="dynamics"] [data-test="line-chart"]')).toHaveLength(2) // no gates in an RNN
    expect(w.find('[data-test="dynamics-none"]').exists()).toBe(false)
    w.unmount()
  })

  it('says so in one line when the run has one checkpoint', async () => {
    catalog.info.m = info
    stub({ run_id: 7, curves, dynamics: null })
    const w = mount(SummaryView, { props: { model: 'm', side: 'a' } })
    await flushPromises()
    expect(w.find('[data-test="dynamics-none"]').text()).toContain('single checkpoint')
    expect(w.find('[data-test="dynamics"]').exists()).toBe(false)
    w.unmount()
  })

  it('follows the run of its own training job live instead of loading the training endpoint', async () => {
    catalog.info.m = info
    jobsStore.jobs = [{ id: 't', kind: 'train', title: 'train m', status: 'running', progress: 0.4, message: 'epoch 1',
      eta_s: null, error: null, created_at: 1, result: null, meta: { model: 'm', run_id: 7 } }]
    const urls: string[] = []
    stub({ run_id: 7, curves, dynamics: null }, urls)
    const w = mount(SummaryView, { props: { model: 'm', side: 'a' } })
    await flushPromises()
    expect(w.find('[data-test="training-live"]').text()).toContain('40 %')
    expect(urls).toContain('/api/runs/7/metrics')
    expect(urls.some((u) => u.endsWith('/training'))).toBe(false)
    expect(w.findAll('[data-test="training-curve"]').map((c) => c.attributes('data-key'))).toEqual(['loss'])
    expect(w.find('[data-test="dynamics-later"]').exists()).toBe(true)
    jobsStore.jobs = [{ ...jobsStore.jobs[0], status: 'done', progress: 1 }]
    await flushPromises()
    await flushPromises()
    expect(urls.some((u) => u.endsWith('/training'))).toBe(true)
    expect(w.find('[data-test="training-live"]').exists()).toBe(false)
    w.unmount()
  })
})
