/**
 * Typed client of the JSON API (docs/api.md). One function per endpoint; every failure is
 * thrown as an ApiError {status, error, fix, job?}. `withRecording` turns a 409 (view recording
 * not ready) into "start/poll the job, report progress, retry".
 */

// ---------------------------------------------------------------- schemas

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled'

export interface ErrorBody {
  error: string
  fix: string
}

export interface Job {
  id: string
  kind: 'record' | 'train' | 'analysis'
  title: string
  status: JobStatus
  progress: number
  message: string
  eta_s: number | null
  error: ErrorBody | null
  /** seconds since the epoch (the server's clock) */
  created_at: number | string
  result: Record<string, unknown> | null
  /** what the job is about, e.g. a train job's {model, run_id} (run_id once the run exists) */
  meta?: JobMeta
}

export interface JobMeta {
  model?: string
  /** the split a recording (or an analysis) reads */
  split?: string
  run_id?: number
  [key: string]: unknown
}

/** Result of a done train job. */
export interface TrainResult {
  name: string
  run_id: number
  model_id: string | null
  epochs_run: number
  stopped_early: boolean
  metrics: Record<string, unknown> | null
}

export interface Health {
  status: string
  workspace: string
}

export interface Dataset {
  name: string
  title: string
  level: string
  task: string
  client: string
  package: string
  licence: string
  fetched: boolean
  size_bytes: number | null
  documents: number | null
}

export interface ModelSummary {
  id: string
  name: string
  kind: string
  tag: string | null
  epoch: number | null
  run_id: number | null
  config: Record<string, unknown>
  /** split -> key -> value (e.g. metrics.valid.ppl) */
  metrics: Record<string, Record<string, number | null>>
}

export interface RunMetricPoint {
  step: number
  epoch: number | null
  value: number | null
}

export interface Run {
  run_id: number
  [key: string]: unknown
}

export interface RunMetrics {
  run_id: number
  series: Record<string, Record<string, RunMetricPoint[]>>
}

export interface Baseline {
  dataset: string
  split: string
  kind: string
  key: string
  metrics: Record<string, number | null>
}

export type StreamType = 'h' | 'c' | 'gate'

export interface StreamInfo {
  name: string
  layer: number
  direction: string
  type: StreamType
  gate: string | null
  units: number
  /** stored per token (else recomputed for a window); null until the recording is made */
  stored?: boolean | null
  /** has per-word statistics (expected responses: memory, radar); null until the recording is made */
  word_stats?: boolean | null
}

export interface RecordingInfo {
  status: 'ready' | 'missing' | 'running'
  tokens: number | null
  documents: number | null
  job: Job | null
}

export interface ModelInfo {
  /** the split this info (and its recording) is about; `splits`: every split the app can read */
  ref: string
  id: string
  name: string
  kind: 'lm' | 'classifier'
  level: 'word' | 'char'
  cell: string
  layers: number
  hidden: number
  dataset: string
  split: string
  splits: string[]
  default_split: string
  own: boolean
  labels: string[] | null
  streams: StreamInfo[]
  default_stream: string
  recording: RecordingInfo
  has_pos: boolean
  run_id: number | null
}

export interface CoclusterWord {
  word: string
  weight: number
  count: number
  pos: string | null
}

export interface Cocluster {
  stream: string
  k: number
  /** per k tried: bipartite modularity (score) and spectral gap σk/σk+1 (gap; null where unknown) */
  k_scores: { k: number; score: number | null; gap: number | null }[]
  score_name: string
  gap_name: string
  /** k is the largest k whose gap reaches this */
  gap_threshold: number
  /** how k was chosen: "given", "spectral gap" or "bipartite modularity (no spectral gap)" */
  k_rule: string
  units: { unit: number; cluster: number }[]
  unit_clusters: { id: number; units: number[] }[]
  word_clusters: { id: number; words: CoclusterWord[] }[]
  /** (k, k): signed mean response of unit cluster i to word cluster j */
  links: (number | null)[][]
  n_words: number
  min_count: number
}

export interface WordResponse {
  word: string
  count: number
  response: (number | null)[]
  std: (number | null)[]
  pos: string | null
}

export interface WordStat {
  word: string
  mean: number
  std: number
  count: number
  /** [q09, q25, q75, q91] */
  q: [number, number, number, number] | null
}

export interface UnitResponse {
  unit: number
  stream: string
  positive: WordStat[]
  negative: WordStat[]
  /** values over every token of the recording (from the unit statistics for a stream not stored) */
  histogram: { edges: number[]; counts: number[] } | null
  mean: number
  std: number
  cluster: number | null
}

export interface DocumentSummary {
  doc: number
  tokens: number
  preview: string
}

export interface DocumentList {
  total: number
  documents: DocumentSummary[]
}

export interface SentenceRequest {
  text?: string
  doc?: number
  start?: number
  stop?: number
  streams?: string[]
  k?: number
  stream?: string
}

export interface Glyphs {
  stream: string
  k: number
  unit_labels: number[]
  /** each (tokens, k) */
  pos: number[][]
  neg: number[][]
  dpos: number[][]
  dneg: number[][]
  kept: number[][]
}

export interface Sentence {
  source: 'typed' | 'corpus'
  doc: number | null
  tokens: string[]
  /** name -> (tokens, units) */
  streams: Record<string, (number | null)[][]>
  outputs: {
    loss: (number | null)[] | null
    top: { token: string; prob: number }[][] | null
    probs: { label: string; prob: number }[] | null
  }
  glyphs: Glyphs | null
}

export interface Saturation {
  gates: {
    stream: string
    layer: number
    direction: string
    gate: string
    units: { unit: number; low: number; high: number }[]
  }[]
  summary: { layer: number; gate: string; mean_low: number; mean_high: number; share_saturated: number }[]
}

export interface Radar {
  stream: string
  words: string[]
  dims: { unit: number; label: string }[]
  values: number[][]
  chosen_by: 'given' | 'variance across words'
}

export interface SaliencyRequest {
  text: string
  target?: number | string
  steps?: number
}

export interface Saliency {
  tokens: string[]
  target: number | string
  target_label: string | null
  methods: { grad: number[]; grad_x_input: number[]; integrated: number[] }
  dims: number[][]
  prediction: { label: string; prob: number }[]
}

export interface ProjectionParams {
  what: 'units' | 'trajectory'
  stream?: string
  method?: 'pca' | 'tsne' | 'umap'
  text?: string
  doc?: number
}

export interface Projection {
  what: 'units' | 'trajectory'
  method: string
  points: { x: number; y: number; label: string; group: number | null }[]
  explained: number[] | null
}

export interface Discovery {
  annotations: {
    name: string
    kind: 'binary' | 'scalar'
    metric: 'auc' | 'pearson'
    top: { stream: string; unit: number; score: number | null; effect: number | null }[]
    probe: { stream: string; metric: string; test_score: number | null; baseline: number | null } | null
  }[]
  available: string[]
}

export interface Threshold {
  kind: 'abs' | 'pct'
  value: number
}

export interface PatternSelectRequest {
  stream: string
  doc: number
  start: number
  stop: number
  threshold: Threshold
  off_after?: boolean
}

export interface PatternSelect {
  stream: string
  units: number[]
  theta: number[]
  doc: number
  tokens: string[]
  values: number[][]
}

export interface PatternMatchRequest {
  stream: string
  units: number[]
  threshold: Threshold
  min_fraction?: number
  min_len?: number
  max_len?: number | null
  limit?: number
}

export interface PatternMatch {
  total: number
  matches: {
    doc: number
    start: number
    stop: number
    tokens: string[]
    context: [number, number]
    matched: number
    extra: number
    jaccard: number
    counts: number[]
    tracks: Record<string, number[]>
  }[]
  length_hist: { lengths: number[]; counts: number[] }
}

export interface Metrics {
  kind: string
  split: string
  metrics: Record<string, number | null>
  baselines: { name: string; metrics: Record<string, number | null> }[]
  confusion: number[][] | null
  labels: string[] | null
  calibration: {
    bins: number[]
    accuracy: (number | null)[]
    confidence: (number | null)[]
    counts: number[]
    ece: number
  } | null
}

export interface LmErrorExample {
  left: string
  token: string
  right: string
  p_true: number
  predicted: string
}

export interface LmErrors {
  kind: 'lm'
  level: string
  total: number
  errors: number
  categories: { name: string; count: number; share: number; examples: LmErrorExample[] }[]
  reference: { source: string; shares: Record<string, number> } | null
}

export interface ClassifierErrors {
  kind: 'classifier'
  slices: { family: string; name: string; n: number; accuracy: number; errors: number }[]
  misclassified: {
    doc: number
    text: string
    gold: string
    predicted: string
    confidence: number
    tokens: string[]
    saliency: number[]
  }[]
}

export type Errors = LmErrors | ClassifierErrors

/** Checkpoint dynamics: per stream, one value per checkpoint (in `labels` order); null = NaN. */
export interface TrainingDynamics {
  /** checkpoint labels, e.g. "epoch 3 (best)" */
  labels: string[]
  /** tokens every checkpoint was recorded on */
  tokens: number
  /** gate streams: fraction of left- (≈0) and right-saturated (≈1) values */
  saturation: Record<string, { left: (number | null)[]; right: (number | null)[] }>
  /** mean |h_t - h_{t-1}| */
  mean_abs_delta: Record<string, (number | null)[]>
  /** linear CKA of each checkpoint's states to the final checkpoint's */
  cka_to_final: Record<string, (number | null)[]>
}

export interface Training {
  run_id: number | null
  curves: { split: string; key: string; points: RunMetricPoint[] }[]
  dynamics: TrainingDynamics | null
}

export interface LossGroup {
  group: string
  n: number
  mean_a: number
  mean_b: number
  diff: number
  /** share of the group's tokens where A has the lower loss */
  a_wins?: number | null
}

export interface Compare {
  a: string
  b: string
  same_tokens: boolean
  /** tokens both recordings share (the comparison is over these) */
  shared_tokens: number
  /** the stream compared (matching, clusters) */
  stream: string
  loss: {
    /** null when there is no loss to compare (a classifier's data without gold labels) */
    mean_a: number | null
    mean_b: number | null
    /** tokens (LMs) or documents (classifiers) the losses are over */
    tokens: number
    /** share where A has the lower loss */
    a_wins: number | null
    by_word: LossGroup[]
    by_pos: LossGroup[] | null
    /** null while model a's error taxonomy is still being computed */
    by_category: LossGroup[] | null
  }
  similarity: { layers_a: string[]; layers_b: string[]; cka: number[][]; svcca: number[][] }
  matching: { pairs: { a: number; b: number; r: number }[]; mean_r: number }
  clusters: {
    ari: number
    table: number[][]
    /** cluster ids of the table's rows (model a) and columns (model b) */
    clusters_a: number[]
    clusters_b: number[]
    /** matched cluster pairs with the words they share */
    pairs: { a: number; b: number; shared: number }[]
  } | null
}

export interface CompareTokens {
  doc: number
  tokens: string[]
  loss_a: (number | null)[]
  loss_b: (number | null)[]
  diff: (number | null)[]
  /** true when the document was cut to the first tokens shown */
  truncated: boolean
}

export interface TrainRequest {
  dataset: string
  name?: string
  cell: string
  layers: number
  hidden: number
  epochs: number
  level?: string
  [key: string]: unknown
}

// ---------------------------------------------------------------- errors

export class ApiError extends Error {
  status: number
  error: string
  fix: string
  job?: Job

  constructor(status: number, error: string, fix: string, job?: Job) {
    super(error)
    this.name = 'ApiError'
    this.status = status
    this.error = error
    this.fix = fix
    this.job = job
  }

  /** true for 409 "view recording not ready" answers that carry the recording job */
  get isRecording(): boolean {
    return this.status === 409 && this.job !== undefined
  }
}

/** Turn a non-2xx answer (status + parsed body or raw text) into an ApiError. */
export function parseError(status: number, body: unknown): ApiError {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>
    if (typeof b.error === 'string') {
      const job = b.job && typeof b.job === 'object' ? (b.job as Job) : undefined
      return new ApiError(status, b.error, typeof b.fix === 'string' ? b.fix : '', job)
    }
    // FastAPI's default {"detail": ...} (e.g. a 422 before our handler runs)
    if ('detail' in b) {
      const d = b.detail
      let msg: string
      if (Array.isArray(d)) {
        msg = d
          .map((e: { loc?: unknown[]; msg?: string }) =>
            `${(e.loc ?? []).filter((x) => x !== 'body' && x !== 'query').join('.')}: ${e.msg ?? ''}`)
          .join('; ')
      } else if (d && typeof d === 'object' && typeof (d as ErrorBody).error === 'string') {
        const e = d as ErrorBody & { job?: Job }
        return new ApiError(status, e.error, e.fix ?? '', e.job)
      } else {
        msg = String(d)
      }
      return new ApiError(status, msg, 'Check the request parameters.')
    }
  }
  const text = typeof body === 'string' && body.trim() ? body.trim().slice(0, 300) : `HTTP ${status}`
  const fix =
    status === 404
      ? 'This endpoint or object does not exist on the server; is the server up to date?'
      : status >= 500
        ? 'The server failed; see its log.'
        : 'Check the request.'
  return new ApiError(status, text, fix)
}

// ---------------------------------------------------------------- transport

export let apiBase = ''
export function setApiBase(base: string): void {
  apiBase = base.replace(/\/$/, '')
}

export type Query = Record<string, string | number | boolean | null | undefined | (string | number)[]>

let splitSource: () => string = () => ''
/**
 * Where the views' split comes from (the app wires it to `state.split`): every request about one
 * model's views (`/api/models/{ref}/...`) and every compare request carries it as `?split=`.
 */
export function setSplitSource(fn: () => string): void {
  splitSource = fn
}
/** The split the views read now ('' = each model's default). */
export const currentSplit = (): string => splitSource()

/** Whether `path` is a route that reads a view recording (and so takes `split`). */
export function readsRecording(path: string): boolean {
  return /^\/api\/models\/[^/]+\/./.test(path) || path.startsWith('/api/compare')
}

/** Build a query string, dropping null/undefined/empty values; arrays are comma-joined. */
export function queryString(q: Query = {}): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue
    const s = Array.isArray(v) ? v.join(',') : String(v)
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(s)}`)
  }
  return parts.length ? `?${parts.join('&')}` : ''
}

async function request<T>(method: string, path: string, query?: Query, body?: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response
  try {
    const q = readsRecording(path) ? { ...query, split: currentSplit() } : query
    res = await fetch(`${apiBase}${path}${queryString(q)}`, {
      method,
      headers: body !== undefined ? { 'Content-Type': 'application/json' } : undefined,
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal,
    })
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e
    throw new ApiError(0, `Cannot reach the server (${(e as Error).message})`, 'Is `rnnvis serve` running?')
  }
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = text ? JSON.parse(text) : null
  } catch {
    /* keep the raw text */
  }
  if (!res.ok) throw parseError(res.status, parsed)
  return parsed as T
}

const get = <T>(path: string, q?: Query, signal?: AbortSignal) => request<T>('GET', path, q, undefined, signal)
const post = <T>(path: string, body?: unknown, q?: Query, signal?: AbortSignal) =>
  request<T>('POST', path, q, body ?? {}, signal)
const m = (ref: string) => `/api/models/${encodeURIComponent(ref)}`

// ---------------------------------------------------------------- endpoints

/**
 * Radar words for the query: comma-joined, or a JSON array when a word is blank or holds a comma
 * (a character model's space, newline, tab or ","), which a comma list would lose.
 */
export function radarWords(words: string[] | undefined): string | undefined {
  if (!words) return undefined
  return words.some((w) => /[\s,]/.test(w) || w.startsWith('[')) ? JSON.stringify(words) : words.join(',')
}

export const api = {
  health: () => get<Health>('/api/health'),
  datasets: () => get<Dataset[]>('/api/datasets'),
  models: () => get<ModelSummary[]>('/api/models'),
  runs: () => get<Run[]>('/api/runs'),
  runMetrics: (id: number) => get<RunMetrics>(`/api/runs/${id}/metrics`),
  baselines: (dataset?: string) => get<Baseline[]>('/api/baselines', { dataset }),

  jobs: () => get<Job[]>('/api/jobs'),
  job: (id: string) => get<Job>(`/api/jobs/${encodeURIComponent(id)}`),
  cancelJob: (id: string) => post<Job>(`/api/jobs/${encodeURIComponent(id)}/cancel`),
  train: (body: TrainRequest) => post<Job>('/api/train', body),

  info: (ref: string) => get<ModelInfo>(`${m(ref)}/info`),
  record: (ref: string) => post<Job>(`${m(ref)}/record`),

  cocluster: (ref: string, q: { stream?: string; k?: number; min_count?: number; max_words?: number }) =>
    get<Cocluster>(`${m(ref)}/cocluster`, q),
  word: (ref: string, q: { stream?: string; word: string }) => get<WordResponse>(`${m(ref)}/word`, q),
  unit: (ref: string, q: { stream?: string; unit: number; k?: number }) => get<UnitResponse>(`${m(ref)}/unit`, q),
  documents: (ref: string, q: { offset?: number; limit?: number; q?: string } = {}) =>
    get<DocumentList>(`${m(ref)}/documents`, q),
  sentence: (ref: string, body: SentenceRequest) => post<Sentence>(`${m(ref)}/sentence`, body),
  saturation: (ref: string) => get<Saturation>(`${m(ref)}/saturation`),
  radar: (ref: string, q: { stream?: string; words?: string[]; dims?: number[]; n?: number }) =>
    get<Radar>(`${m(ref)}/radar`, { ...q, words: radarWords(q.words) }),
  saliency: (ref: string, body: SaliencyRequest) => post<Saliency>(`${m(ref)}/saliency`, body),
  projection: (ref: string, q: ProjectionParams) => get<Projection>(`${m(ref)}/projection`, { ...q }),
  discovery: (ref: string, q: { annotations?: string[]; top?: number } = {}) =>
    get<Discovery>(`${m(ref)}/discovery`, q),
  patternSelect: (ref: string, body: PatternSelectRequest) => post<PatternSelect>(`${m(ref)}/pattern/select`, body),
  patternMatch: (ref: string, body: PatternMatchRequest) => post<PatternMatch>(`${m(ref)}/pattern/match`, body),

  metrics: (ref: string) => get<Metrics>(`${m(ref)}/metrics`),
  errors: (ref: string) => get<Errors>(`${m(ref)}/errors`),
  training: (ref: string) => get<Training>(`${m(ref)}/training`),

  compare: (a: string, b: string, stream?: string) => get<Compare>('/api/compare', { a, b, stream }),
  compareTokens: (a: string, b: string, doc: number) => get<CompareTokens>('/api/compare/tokens', { a, b, doc }),
}

// ---------------------------------------------------------------- recording-aware calls

export interface Progress {
  job: Job
}

export type ProgressCallback = (job: Job | null) => void

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Run `fn`; when it answers 409 (view recording not ready), make sure the recording job runs
 * (POST /record), poll `/api/jobs/{id}` every `intervalMs`, report each state to `onProgress`,
 * and retry `fn` once the job is done. A failed/cancelled job becomes an ApiError. A 409 carrying a
 * failed `analysis` job (a slow analysis such as discovery) surfaces that job's error at once.
 * `onProgress(null)` is called when the wait is over.
 */
export async function withRecording<T>(
  ref: string,
  fn: () => Promise<T>,
  onProgress: ProgressCallback = () => {},
  opts: { intervalMs?: number; maxRetries?: number; isCancelled?: () => boolean } = {},
): Promise<T> {
  const interval = opts.intervalMs ?? 500
  const maxRetries = opts.maxRetries ?? 3
  for (let attempt = 0; ; attempt++) {
    try {
      const out = await fn()
      onProgress(null)
      return out
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 409 || attempt >= maxRetries) throw e
      let job: Job | undefined = e.job
      if (job?.kind === 'analysis' && job.status === 'failed') {
        // a slow analysis that failed: its error is the answer (recording again would not help)
        onProgress(null)
        throw new ApiError(
          409,
          job.error?.error ?? `${job.title || 'The analysis'} failed.`,
          job.error?.fix ?? 'Reload to try the analysis again; see the server log.',
          job,
        )
      }
      if (job?.kind === 'analysis' && job.status === 'cancelled') {
        // asking again starts the analysis again
        await sleep(interval)
        continue
      }
      if (!job || job.status === 'failed' || job.status === 'cancelled') {
        job = await api.record(ref)
      }
      onProgress(job)
      while (job.status === 'queued' || job.status === 'running') {
        if (opts.isCancelled?.()) throw new ApiError(0, 'cancelled', '')
        await sleep(interval)
        job = await api.job(job.id)
        onProgress(job)
      }
      if (job.status !== 'done') {
        onProgress(null)
        const what = job.kind === 'analysis' ? job.title || 'The analysis' : 'The view recording'
        throw new ApiError(
          409,
          job.error?.error ?? (job.status === 'cancelled' ? `${what} was cancelled.` : `${what} ${job.status}.`),
          job.error?.fix ??
            (job.status === 'cancelled'
              ? 'Reload the page to start it again.'
              : job.kind === 'analysis' ? 'Reload to start it again.' : 'Start the recording again (POST /api/models/{ref}/record).'),
          job,
        )
      }
    }
  }
}
