// @vitest-environment node
import { describe, it, expect, vi, afterEach } from 'vitest'
import { ApiError, api, parseError, queryString, readsRecording, setSplitSource, withRecording, type Job } from './api'

const job = (over: Partial<Job> = {}): Job => ({
  id: 'j1', kind: 'record', title: 'Recording', status: 'running', progress: 0.2, message: 'batch 1',
  eta_s: 3, error: null, created_at: '', result: null, ...over,
})

function reply(status: number, body: unknown) {
  return Promise.resolve(new Response(typeof body === 'string' ? body : JSON.stringify(body), { status }))
}

afterEach(() => vi.unstubAllGlobals())

describe('parseError', () => {
  it('reads {error, fix} and the job of a 409', () => {
    const e = parseError(409, { error: 'not recorded', fix: 'wait', job: job() })
    expect(e).toBeInstanceOf(ApiError)
    expect([e.status, e.error, e.fix, e.job?.id]).toEqual([409, 'not recorded', 'wait', 'j1'])
    expect(e.isRecording).toBe(true)
  })

  it('flattens a FastAPI 422 detail list', () => {
    const e = parseError(422, { detail: [{ loc: ['query', 'k'], msg: 'must be an integer' }] })
    expect(e.error).toBe('k: must be an integer')
    expect(e.isRecording).toBe(false)
  })

  it('turns plain text or empty bodies into a message with a fix', () => {
    expect(parseError(500, 'Internal Server Error').error).toBe('Internal Server Error')
    const e = parseError(404, null)
    expect(e.error).toBe('HTTP 404')
    expect(e.fix).toMatch(/exist/)
  })
})

describe('queryString', () => {
  it('skips empty values and joins arrays', () => {
    expect(queryString({ a: 1, b: undefined, c: null, d: '', e: ['x', 'y z'], f: 0 })).toBe('?a=1&e=x%2Cy%20z&f=0')
    expect(queryString({})).toBe('')
  })
})

describe('client', () => {
  it('throws ApiError on an error answer', async () => {
    vi.stubGlobal('fetch', vi.fn(() => reply(404, { error: 'no model x', fix: 'see /api/models' })))
    await expect(api.info('x')).rejects.toMatchObject({ status: 404, error: 'no model x', fix: 'see /api/models' })
  })

  it('encodes the ref and posts JSON bodies', async () => {
    const f = vi.fn((_url: string, _init?: RequestInit) => reply(200, { tokens: [] }))
    vi.stubGlobal('fetch', f)
    await api.sentence('my model', { text: 'hi', k: 3 })
    expect(f.mock.calls[0][0]).toBe('/api/models/my%20model/sentence')
    expect(f.mock.calls[0][1]?.method).toBe('POST')
    expect(JSON.parse(f.mock.calls[0][1]?.body as string)).toEqual({ text: 'hi', k: 3 })
  })
})

describe('withRecording', () => {
  it('polls the job on 409, reports progress and retries', async () => {
    let calls = 0
    const fn = vi.fn(async () => {
      calls++
      if (calls === 1) throw new ApiError(409, 'recording', 'wait', job())
      return 'data'
    })
    const polls = [job({ progress: 0.6 }), job({ status: 'done', progress: 1 })]
    vi.stubGlobal('fetch', vi.fn(() => reply(200, polls.shift())))
    const seen: (number | null)[] = []
    const out = await withRecording('m', fn, (j) => seen.push(j ? j.progress : null), { intervalMs: 1 })
    expect(out).toBe('data')
    expect(fn).toHaveBeenCalledTimes(2)
    expect(seen).toEqual([0.2, 0.6, 1, null])
  })

  it('starts the recording when the 409 carries no running job, and fails on a failed job', async () => {
    const f = vi.fn((url: string) =>
      url.endsWith('/record') ? reply(200, job({ status: 'queued' })) : reply(200, job({ status: 'failed', error: { error: 'disk full', fix: 'free space' } })),
    )
    vi.stubGlobal('fetch', f)
    const fn = () => Promise.reject(new ApiError(409, 'not recorded', 'record it'))
    await expect(withRecording('m', fn, () => {}, { intervalMs: 1 })).rejects.toMatchObject({ error: 'disk full', fix: 'free space' })
    expect(f.mock.calls[0][0]).toBe('/api/models/m/record')
  })

  it("surfaces a failed analysis job's error instead of starting a recording", async () => {
    const f = vi.fn(() => reply(200, job({ status: 'queued' })))
    vi.stubGlobal('fetch', f)
    const failed = job({ kind: 'analysis', title: 'discovery of m', status: 'failed', error: { error: 'probe diverged', fix: 'fewer annotations' } })
    const fn = vi.fn(() => Promise.reject(new ApiError(409, 'not ready', 'wait', failed)))
    const seen: (Job | null)[] = []
    await expect(withRecording('m', fn, (j) => seen.push(j), { intervalMs: 1 }))
      .rejects.toMatchObject({ error: 'probe diverged', fix: 'fewer annotations' })
    expect(f).not.toHaveBeenCalled()
    expect(fn).toHaveBeenCalledTimes(1)
    expect(seen).toEqual([null])
  })

  it('polls a running analysis job like a recording', async () => {
    let calls = 0
    const fn = vi.fn(async () => {
      if (++calls === 1) throw new ApiError(409, 'computing', 'wait', job({ kind: 'analysis', id: 'a1' }))
      return 'ok'
    })
    const f = vi.fn((_url: string) => reply(200, job({ kind: 'analysis', id: 'a1', status: 'done', progress: 1 })))
    vi.stubGlobal('fetch', f)
    expect(await withRecording('m', fn, () => {}, { intervalMs: 1 })).toBe('ok')
    expect(f.mock.calls.map((c) => c[0])).toEqual(['/api/jobs/a1'])
  })

  it('passes other errors through unchanged', async () => {
    const err = new ApiError(400, 'bad k', 'use k >= 2')
    await expect(withRecording('m', () => Promise.reject(err))).rejects.toBe(err)
  })
})

describe('the chosen split', () => {
  afterEach(() => setSplitSource(() => ''))

  it('goes with every request that reads a view recording, and only with those', async () => {
    let split = 'valid'
    setSplitSource(() => split)
    const urls: string[] = []
    vi.stubGlobal('fetch', vi.fn((url: string) => {
      urls.push(url)
      return reply(200, {})
    }))
    await api.cocluster('m', { stream: 'layer0.fwd.c' })
    await api.sentence('m', { doc: 3 })
    await api.compare('a', 'b')
    await api.record('m')
    await api.models()
    await api.jobs()
    split = ''
    await api.info('m')
    expect(urls).toEqual([
      '/api/models/m/cocluster?stream=layer0.fwd.c&split=valid', '/api/models/m/sentence?split=valid',
      '/api/compare?a=a&b=b&split=valid', '/api/models/m/record?split=valid', '/api/models', '/api/jobs',
      '/api/models/m/info',
    ])
  })

  it('knows which routes read a recording', () => {
    expect(readsRecording('/api/models/m/info')).toBe(true)
    expect(readsRecording('/api/models/m')).toBe(false)
    expect(readsRecording('/api/models')).toBe(false)
    expect(readsRecording('/api/compare/tokens')).toBe(true)
    expect(readsRecording('/api/jobs/j1')).toBe(false)
  })
})

describe('radar words in the query', () => {
  it('are a comma list, or JSON when one is blank or holds a comma (character models)', async () => {
    const { radarWords } = await import('./api')
    expect(radarWords(['the', 'cat'])).toBe('the,cat')
    expect(JSON.parse(radarWords(['e', ' ', '\n', ','])!)).toEqual(['e', ' ', '\n', ','])
    expect(radarWords(undefined)).toBeUndefined()
  })
})
