import { describe, it, expect, vi, afterEach } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import type { Dataset, ModelInfo } from './api'
import { OTHER, datasetOptions, defaultForm, suggestName, validateTrain } from './trainForm'
import { catalog } from './models'
import { jobsStore, jobsUi } from './jobs'
import TrainForm from './components/TrainForm.vue'

const ds = (name: string, fetched: boolean): Dataset => ({
  name, title: name.toUpperCase(), level: 'word', task: 'lm', client: '', package: '', licence: '', fetched,
  size_bytes: null, documents: null,
})
const json = (body: unknown, status = 200) =>
  Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }))

afterEach(() => {
  vi.unstubAllGlobals()
  jobsUi.trainOpen = false
  jobsUi.panelOpen = false
  jobsStore.jobs = []
  catalog.models = []
  catalog.info = {}
})

describe('train form logic', () => {
  it('offers fetched data sets, own data of the models here, and unfetched ones disabled', () => {
    const g = datasetOptions([ds('brown', true), ds('ptb', false)], ['lines', 'brown', 'lines'])
    expect(g.map((x) => x.label)).toEqual(['data of the models here', 'built-in data sets'])
    expect(g[0].options.map((o) => o.value)).toEqual(['lines'])
    expect(g[1].options.map((o) => [o.value, o.disabled])).toEqual([['brown', false], ['ptb', true]])
    expect(g[1].options[1].hint).toContain('rnnvis data get ptb')
  })

  it('suggests a free name', () => {
    expect(suggestName('lines', 'gru', 16, [])).toBe('lines-gru-16')
    expect(suggestName('lines', 'gru', 16, ['lines-gru-16', 'lines-gru-16-2'])).toBe('lines-gru-16-3')
  })

  it('validates like the server and builds the body', () => {
    const f = { ...defaultForm(), dataset: 'lines', name: 'ok-1', hidden: '16', epochs: 2, patience: '' }
    const { body, errors } = validateTrain(f, [])
    expect(errors).toEqual({})
    expect(body).toEqual({ dataset: 'lines', name: 'ok-1', cell: 'lstm', layers: 1, hidden: 16, emb: 64, epochs: 2,
      batch_size: 32, patience: null, dropout: 0.2 })
    const bad = validateTrain({ ...f, name: '-x', layers: 5, epochs: 0, hidden: 2.5, dataset: OTHER, other: ' ' }, [])
    expect(Object.keys(bad.errors).sort()).toEqual(['dataset', 'epochs', 'hidden', 'layers', 'name'])
    expect(bad.body).toBeNull()
    expect(validateTrain({ ...f, name: 'taken' }, ['taken']).errors.name).toMatch(/exists already/)
    expect(validateTrain({ ...f, task: 'lm', level: 'char' }, []).body).toMatchObject({ task: 'lm', level: 'char' })
    expect(validateTrain({ ...f, name: 'a'.repeat(65) }, []).errors.name).toBeTruthy()
  })
})

describe('TrainForm', () => {
  it('posts the training, opens the Jobs panel, and shows server errors with their fix', async () => {
    catalog.info = { 'tiny-lstm': { dataset: 'lines' } as ModelInfo }
    const posts: unknown[] = []
    let fail = true
    const trainJob = { id: 'tj', kind: 'train', title: 'train x', status: 'queued', progress: 0, message: null, eta_s: null,
      error: null, created_at: 1, result: null, meta: { model: 'x' } }
    vi.stubGlobal('fetch', vi.fn((url: string, init?: RequestInit) => {
      if (url === '/api/datasets') return json([ds('brown', false)])
      if (url === '/api/train') {
        posts.push(JSON.parse(init!.body as string))
        return fail ? json({ error: "unknown data set 'lines'", fix: 'use one of brown' }, 404) : json(trainJob)
      }
      if (url === '/api/jobs') return json(fail ? [] : [trainJob])
      return json({ error: 'x', fix: '' }, 404)
    }))
    jobsUi.trainOpen = true
    const w = mount(TrainForm)
    await flushPromises()
    expect(w.find('[data-test="train-form"]').exists()).toBe(true)
    expect((w.find('[data-test="train-dataset"]').element as HTMLSelectElement).value).toBe('lines')
    expect((w.find('[data-test="train-name"]').element as HTMLInputElement).value).toBe('lines-lstm-128')
    await w.find('[data-test="train-cell"]').setValue('gru')
    await w.find('[data-test="train-hidden"]').setValue('8')
    await w.find('[data-test="train-epochs"]').setValue('2')
    expect((w.find('[data-test="train-name"]').element as HTMLInputElement).value).toBe('lines-gru-8')
    await w.find('[data-test="train-name"]').setValue('bad name')
    await w.find('[data-test="train-form"]').trigger('submit')
    expect(w.find('[data-test="train-name-error"]').exists()).toBe(true)
    expect(posts).toHaveLength(0)
    await w.find('[data-test="train-name"]').setValue('x')
    await w.find('[data-test="train-form"]').trigger('submit')
    await flushPromises()
    expect(posts[0]).toMatchObject({ dataset: 'lines', name: 'x', cell: 'gru', hidden: 8, epochs: 2, layers: 1 })
    expect(w.find('[data-test="train-error"]').text()).toContain("unknown data set 'lines'")
    expect(w.find('[data-test="train-error"]').text()).toContain('use one of brown')
    fail = false
    await w.find('[data-test="train-form"]').trigger('submit')
    await flushPromises()
    expect(jobsUi.trainOpen).toBe(false)
    expect(jobsUi.panelOpen).toBe(true)
    expect(jobsUi.focus).toBe('tj')
    expect(jobsStore.jobs.map((j) => j.id)).toContain('tj')
    w.unmount()
  })
})
