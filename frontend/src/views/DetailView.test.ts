import { describe, it, expect, vi, afterEach } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import DetailView from './DetailView.vue'
import { catalog } from '../models'
import { state, defaultState } from '../state'
import type { ModelInfo, Sentence } from '../api'

const info = {
  ref: 'm', id: 'x', name: 'm', kind: 'lm', level: 'word', cell: 'lstm', layers: 1, hidden: 3, dataset: 'brown',
  split: 'test', own: false, labels: null, default_stream: 'layer0.fwd.h', has_pos: false, run_id: 1,
  streams: ['h', 'c', 'gate.f'].map((k) => ({ name: `layer0.fwd.${k}`, layer: 0, direction: 'fwd', type: k.startsWith('gate') ? 'gate' : k, gate: k.startsWith('gate') ? 'f' : null, units: 3 })),
  recording: { status: 'running', tokens: null, documents: null, job: null },
} as ModelInfo

const sentence: Sentence = {
  source: 'typed', doc: null, tokens: ['the', 'cat', 'sat'],
  streams: {
    'layer0.fwd.h': [[0.1, -0.9, 0], [0.2, 0.9, 0], [0.3, -0.9, 0]],
    'layer0.fwd.c': [[1, 2, 3], [1, 2, 3], [-1, 2, 3]],
    'layer0.fwd.gate.f': [[0.1, 0.5, 0.9], [0.1, 0.5, 0.9], [0.1, 0.5, 0.9]],
  },
  outputs: { loss: [1, 2, 3], top: null, probs: null }, glyphs: null,
}
const job = (status: string, progress: number) => ({ id: 'j', kind: 'record', title: 'Recording', status, progress, message: 'going', eta_s: null, error: null, created_at: '', result: null })

afterEach(() => {
  vi.unstubAllGlobals()
  Object.assign(state, defaultState())
})

describe('DetailView', () => {
  it('waits out a 409 recording with progress, then colours the tokens and draws one heatmap per stream', async () => {
    catalog.info.m = info
    state.text = 'the cat sat'
    let n = 0
    const bodies: unknown[] = []
    vi.stubGlobal('fetch', vi.fn((url: string, init?: RequestInit) => {
      if (url.includes('/sentence')) {
        bodies.push(JSON.parse(init!.body as string))
        return Promise.resolve(n++ === 0
          ? new Response(JSON.stringify({ error: 'recording', fix: 'wait', job: job('running', 0.4) }), { status: 409 })
          : new Response(JSON.stringify(sentence)))
      }
      if (url.includes('/api/jobs/j')) return Promise.resolve(new Response(JSON.stringify(job('done', 1))))
      return Promise.resolve(new Response('{}', { status: 404 }))
    }))
    const w = mount(DetailView, { props: { model: 'm', side: 'a' } })
    await flushPromises()
    expect(w.find('[data-test="recording-progress"]').text()).toContain('40 %')
    await new Promise((r) => setTimeout(r, 600))
    await flushPromises()
    expect(bodies[0]).toEqual({ stream: 'layer0.fwd.h', streams: ['layer0.fwd.h', 'layer0.fwd.c', 'layer0.fwd.gate.f'], text: 'the cat sat' })
    const toks = w.findAll('[data-test="token"]')
    expect(toks.map((t) => t.text())).toEqual(['the', 'cat', 'sat'])
    // unit 1 varies most, so it colours the text by default: -0.9 / +0.9 differ
    expect(toks[0].attributes('style')).not.toBe(toks[1].attributes('style'))
    expect(w.findAll('[data-test="heatmap"]').map((h) => h.attributes('data-stream'))).toEqual([
      'layer0.fwd.h', 'layer0.fwd.c', 'layer0.fwd.gate.f',
    ])
    w.unmount()
  })
})
