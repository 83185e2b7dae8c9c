import { describe, it, expect, vi, afterEach } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import type { Job } from './api'
import { activeCount, etaText, finishedJobs, finishedTrainJobs, jobsStore, jobsUi, pollDelay, refreshJobs, trainJobOf } from './jobs'
import { catalog } from './models'
import { state, defaultState } from './state'
import JobsMenu from './components/JobsMenu.vue'
import ChartFrame from './components/ChartFrame.vue'

const job = (over: Partial<Job> = {}): Job => ({
  id: 'j1', kind: 'record', title: 'Recording m', status: 'running', progress: 0.25, message: 'batch 1',
  eta_s: 12, error: null, created_at: 1700000000, result: null, meta: {}, ...over,
})
const json = (body: unknown, status = 200) =>
  Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }))

afterEach(() => {
  vi.unstubAllGlobals()
  jobsStore.jobs = []
  jobsStore.loaded = false
  jobsUi.panelOpen = false
  jobsUi.focus = ''
  catalog.models = []
  Object.assign(state, defaultState())
})

describe('jobs logic', () => {
  it('counts active jobs and polls fast only while one is active', () => {
    const js = [job(), job({ id: 'j2', status: 'queued' }), job({ id: 'j3', status: 'done' })]
    expect(activeCount(js)).toBe(2)
    expect(pollDelay(js)).toBe(1000)
    expect(pollDelay([job({ status: 'failed' })])).toBe(5000)
    expect(pollDelay([])).toBe(5000)
  })

  it('finds the train job of a model by meta name or run id', () => {
    const t = job({ id: 't', kind: 'train', meta: { model: 'new', run_id: 4 } })
    expect(trainJobOf([job(), t], 'new', null)?.id).toBe('t')
    expect(trainJobOf([t], 'other', 4)?.id).toBe('t')
    expect(trainJobOf([t], 'other', 5)).toBeNull()
    expect(trainJobOf([{ ...t, status: 'done' }], 'new', 4)).toBeNull()
  })

  it('notices trainings that ended between two polls', () => {
    const before = [job({ id: 't', kind: 'train' }), job({ id: 'r' })]
    const after = [job({ id: 't', kind: 'train', status: 'done' }), job({ id: 'r', status: 'done' })]
    expect(finishedTrainJobs(before, after).map((j) => j.id)).toEqual(['t'])
    expect(finishedTrainJobs([], after)).toEqual([])
  })

  it('notices recordings that ended between two polls, and only those', () => {
    const before = [job({ id: 'r', kind: 'record' }), job({ id: 's', kind: 'record', status: 'done' })]
    const after = [job({ id: 'r', kind: 'record', status: 'done' }), job({ id: 's', kind: 'record', status: 'done' })]
    expect(finishedJobs(before, after, 'record').map((j) => j.id)).toEqual(['r'])
    expect(finishedJobs(before, after, 'train')).toEqual([])
  })

  it('writes ETAs readably', () => {
    expect(etaText(null)).toBe('')
    expect(etaText(4.2)).toBe('about 5 s left')
    expect(etaText(150)).toBe('about 3 min left')
  })

  it('refreshes the model list when a training ends', async () => {
    let done = false
    const f = vi.fn((url: string) => {
      if (url === '/api/jobs') return json([job({ id: 't', kind: 'train', status: done ? 'done' : 'running', meta: { model: 'new' } })])
      if (url === '/api/models') return json([{ id: 'abc', name: 'new', kind: 'lm', tag: 'best', epoch: 1, run_id: 1, config: {}, metrics: {} }])
      return json({ error: 'x', fix: '' }, 404)
    })
    vi.stubGlobal('fetch', f)
    await refreshJobs()
    expect(f.mock.calls.map((c) => c[0])).toEqual(['/api/jobs'])
    done = true
    await refreshJobs()
    expect(f.mock.calls.map((c) => c[0])).toEqual(['/api/jobs', '/api/jobs', '/api/models'])
    expect(catalog.models.map((m) => m.name)).toEqual(['new'])
  })
})

describe('JobsMenu', () => {
  it('shows a badge, lists jobs with progress, error + fix, cancels and opens a trained model', async () => {
    const jobs = [
      job({ id: 'run', title: 'Recording lm', status: 'running', progress: 0.5, eta_s: 30 }),
      job({ id: 'bad', kind: 'analysis', title: 'discovery of lm', status: 'failed', error: { error: 'boom', fix: 'do X' } }),
      job({ id: 'tr', kind: 'train', title: 'train new', status: 'done', progress: 1, meta: { model: 'new' }, result: { name: 'new', epochs_run: 2 } }),
    ]
    const calls: string[] = []
    vi.stubGlobal('fetch', vi.fn((url: string, init?: RequestInit) => {
      calls.push(`${init?.method ?? 'GET'} ${url}`)
      if (url === '/api/jobs/run/cancel') return json({ ...jobs[0], message: 'cancelling' })
      if (url === '/api/jobs') return json(jobs)
      return json({ error: 'x', fix: '' }, 404)
    }))
    catalog.models = [{ id: 'abc', name: 'new', kind: 'lm', tag: 'best', epoch: 2, run_id: 1, config: {}, metrics: {} }]
    const w = mount(JobsMenu, { attachTo: document.body })
    await flushPromises()
    expect(w.find('[data-test="jobs-badge"]').text()).toBe('1')
    await w.find('[data-test="jobs-button"]').trigger('click')
    const rows = w.findAll('[data-test="job-row"]')
    expect(rows.map((r) => [r.attributes('data-job'), r.attributes('data-status')])).toEqual([
      ['run', 'running'], ['bad', 'failed'], ['tr', 'done']])
    expect(rows[0].text()).toContain('50 %')
    expect(rows[0].text()).toContain('about 30 s left')
    expect(rows[1].find('[data-test="job-error"]').text()).toContain('boom')
    expect(rows[1].find('[data-test="job-error"]').text()).toContain('do X')
    expect(rows[1].find('[data-test="job-cancel"]').exists()).toBe(false)
    await rows[0].find('[data-test="job-cancel"]').trigger('click')
    await flushPromises()
    expect(calls).toContain('POST /api/jobs/run/cancel')
    await w.find('[data-job="tr"] [data-test="job-open"]').trigger('click')
    expect(state.model).toBe('new')
    expect(state.view).toBe('summary')
    expect(w.find('[data-test="jobs-panel"]').exists()).toBe(false)
    w.unmount()
  })
})

describe('ChartFrame', () => {
  it('cancels the recording it waits for', async () => {
    const f = vi.fn((url: string) => json(job({ id: 'rec', message: 'cancelling' })))
    vi.stubGlobal('fetch', f)
    const w = mount(ChartFrame, { props: { title: 'X', job: job({ id: 'rec' }) } })
    expect(w.find('[data-test="recording-progress"]').text()).toContain('25 %')
    await w.find('[data-test="job-cancel"]').trigger('click')
    await flushPromises()
    expect(f.mock.calls[0][0]).toBe('/api/jobs/rec/cancel')
    expect(w.find('[data-test="job-cancel"]').attributes('disabled')).toBeDefined()
  })
})
