/**
 * One reactive app state, mirrored in the URL query string so a shared URL reloads the same view.
 * `encodeState` / `decodeState` are pure (unit-tested); `installUrlSync` wires them to history.
 * Only values different from the defaults are written; unknown keys are kept in `extra`.
 */
import { reactive, watch } from 'vue'

export type ThresholdKind = 'abs' | 'pct'

export interface AppState {
  view: string
  model: string
  model_b: string
  compare: boolean
  /** the split whose view recording the views read (train | valid | test | own); '' = the model's default */
  split: string
  /** stream name, e.g. layer0.fwd.h; '' = the model's default stream */
  stream: string
  /** number of co-clusters; null = server default */
  k: number | null
  word: string
  unit: number | null
  cluster: number | null
  doc: number | null
  text: string
  /** pattern selection (LSTMVis) */
  start: number | null
  stop: number | null
  threshold: number | null
  thkind: ThresholdKind
  units: number[]
  /** radar words, discovery annotations */
  words: string[]
  annotations: string[]
  /** projection */
  what: string
  method: string
  /** document search in the sentence view */
  q: string
  /** detail view: colour the text by a 'unit' or a 'cluster' */
  color: 'unit' | 'cluster'
  /** pattern view: the document the selection (start, stop) was brushed in; null = state.doc */
  pdoc: number | null
  /** radar view: the chosen units (axes); [] = the API's most discriminating units */
  rdims: number[]
  /** radar view: how many units the API picks when rdims is empty */
  rn: number
  /** detail view: the first token of the document window shown (a pattern match opens there); null = 0 */
  at: number | null
  /** keys this version does not know, kept as they came */
  extra: Record<string, string>
}

type Kind = 'str' | 'int' | 'float' | 'bool' | 'ints' | 'strs'

export const FIELDS: Record<Exclude<keyof AppState, 'extra'>, Kind> = {
  view: 'str',
  model: 'str',
  model_b: 'str',
  compare: 'bool',
  split: 'str',
  stream: 'str',
  k: 'int',
  word: 'str',
  unit: 'int',
  cluster: 'int',
  doc: 'int',
  text: 'str',
  start: 'int',
  stop: 'int',
  threshold: 'float',
  thkind: 'str',
  units: 'ints',
  words: 'strs',
  annotations: 'strs',
  what: 'str',
  method: 'str',
  q: 'str',
  color: 'str',
  pdoc: 'int',
  rdims: 'ints',
  rn: 'int',
  at: 'int',
}

export function defaultState(): AppState {
  return {
    view: 'main',
    model: '',
    model_b: '',
    compare: false,
    split: '',
    stream: '',
    k: null,
    word: '',
    unit: null,
    cluster: null,
    doc: null,
    text: '',
    start: null,
    stop: null,
    threshold: null,
    thkind: 'abs',
    units: [],
    words: [],
    annotations: [],
    what: 'units',
    method: 'pca',
    q: '',
    color: 'unit',
    pdoc: null,
    rdims: [],
    rn: 8,
    at: null,
    extra: {},
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i])
  return a === b
}

/** State -> query string (with leading '?', or '' when everything is default). */
export function encodeState(s: AppState): string {
  const d = defaultState()
  const params = new URLSearchParams()
  for (const [key, kind] of Object.entries(FIELDS) as [keyof typeof FIELDS, Kind][]) {
    const v = s[key]
    if (sameValue(v, d[key])) continue
    if (v === null || v === undefined) continue
    if (kind === 'bool') params.set(key, v ? '1' : '0')
    else if (kind === 'ints' || kind === 'strs') {
      // words may contain commas: escape them as %2C inside the comma-joined list
      params.set(key, (v as (string | number)[]).map((x) => String(x).replace(/%/g, '%25').replace(/,/g, '%2C')).join(','))
    } else params.set(key, String(v))
  }
  for (const [k, v] of Object.entries(s.extra)) if (!(k in FIELDS)) params.set(k, v)
  const out = params.toString()
  return out ? `?${out}` : ''
}

function splitList(raw: string): string[] {
  if (raw === '') return []
  return raw.split(',').map((x) => x.replace(/%2C/gi, ',').replace(/%25/g, '%'))
}

/** Query string -> state; bad values fall back to the default of their field. */
export function decodeState(search: string): AppState {
  const s = defaultState()
  const params = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search)
  const rec = s as unknown as Record<string, unknown>
  for (const [key, raw] of params) {
    const kind = (FIELDS as Record<string, Kind>)[key]
    if (!kind) {
      // the access token lives in a cookie once the page loaded: never copy it into shared URLs
      if (key !== 'token') s.extra[key] = raw
      continue
    }
    switch (kind) {
      case 'str':
        rec[key] = raw
        break
      case 'int': {
        const n = Number(raw)
        if (raw !== '' && Number.isInteger(n)) rec[key] = n
        break
      }
      case 'float': {
        const n = Number(raw)
        if (raw !== '' && Number.isFinite(n)) rec[key] = n
        break
      }
      case 'bool':
        rec[key] = raw === '1' || raw === 'true'
        break
      case 'ints': {
        const xs = splitList(raw).map(Number)
        if (xs.every((x) => Number.isInteger(x))) rec[key] = xs
        break
      }
      case 'strs':
        rec[key] = splitList(raw)
        break
    }
  }
  if (s.thkind !== 'abs' && s.thkind !== 'pct') s.thkind = 'abs'
  if (s.color !== 'unit' && s.color !== 'cluster') s.color = 'unit'
  return s
}

/** The app's state, read from the current URL at load. */
export const state: AppState = reactive(
  decodeState(typeof location !== 'undefined' ? location.search : ''),
) as AppState

/** Assign several fields at once. */
export function setState(patch: Partial<AppState>): void {
  Object.assign(state, patch)
}

/** the fields whose change is a step of the user's walk (Back returns to it) */
const STEP_KEYS = ['view', 'model', 'model_b', 'compare'] as const

/**
 * Whether going from query `before` to `after` is a history step: a view, model or compare change.
 * Filling an empty model (the app choosing a default at load) is not: the user did not make it.
 */
export function isHistoryStep(before: string, after: string): boolean {
  const a = decodeState(before)
  const b = decodeState(after)
  return STEP_KEYS.some((k) => a[k] !== b[k] && !(typeof a[k] === 'string' && a[k] === ''))
}

let installed = false
/**
 * Keep the URL in step with `state` and follow back/forward navigation: view and model changes
 * push a history entry, every other change (a clicked word, a threshold) replaces the current one.
 */
export function installUrlSync(): void {
  if (installed || typeof window === 'undefined') return
  installed = true
  watch(
    () => encodeState(state),
    (qs) => {
      const now = window.location.search
      if (qs === now) return
      const url = `${window.location.pathname}${qs}${window.location.hash}`
      if (isHistoryStep(now, qs)) history.pushState(null, '', url)
      else history.replaceState(history.state, '', url)
    },
  )
  // Another document or text starts the detail window at its beginning. Synchronous, so that a
  // patch that sets `at` after `doc` (a pattern match: setState({doc, at})) keeps its `at`.
  watch(() => [state.doc, state.text], () => (state.at = null), { flush: 'sync' })
  // Back / Forward: the URL already changed, so the watcher above sees no difference to write
  window.addEventListener('popstate', () => Object.assign(state, decodeState(window.location.search)))
}

// ---------------------------------------------------------------- streams

export interface ParsedStream {
  layer: number
  direction: string
  /** 'h' | 'c' | 'gate.f' ... */
  kind: string
}

/** 'layer1.fwd.gate.f' -> {layer: 1, direction: 'fwd', kind: 'gate.f'} */
export function parseStream(name: string): ParsedStream | null {
  const m = /^layer(\d+)\.([a-z]+)\.(.+)$/.exec(name)
  if (!m) return null
  return { layer: Number(m[1]), direction: m[2], kind: m[3] }
}

export function streamName(p: ParsedStream): string {
  return `layer${p.layer}.${p.direction}.${p.kind}`
}
