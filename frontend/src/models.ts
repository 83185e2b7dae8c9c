/** Shared, cached model catalogue and ModelInfo per ref (reactive). */
import { reactive } from 'vue'
import { api, currentSplit, type ApiError, type ModelInfo, type ModelSummary } from './api'
import { toApiError } from './useApi'
import type { StreamInfo } from './api'
import type { StreamNeed } from './views/registry'

export const catalog = reactive({
  models: [] as ModelSummary[],
  loaded: false,
  error: null as ApiError | null,
  info: {} as Record<string, ModelInfo | undefined>,
  infoError: {} as Record<string, ApiError | undefined>,
})

/**
 * The ref to use for a catalogue entry: its name when it is the one the name resolves to (the
 * only or the `best` checkpoint of that name), else its 16-hex id prefix.
 */
export function refOf(m: ModelSummary, all: ModelSummary[] = catalog.models): string {
  const same = all.filter((x) => x.name === m.name)
  const main = same.length === 1 ? same[0] : same.find((x) => x.tag === 'best')
  return m.name && main?.id === m.id ? m.name : m.id.slice(0, 16)
}

export interface ModelOption {
  ref: string
  label: string
}

/** Options for a model <select>: one group per model name, its main entry first. */
export function modelOptions(all: ModelSummary[]): { name: string; options: ModelOption[] }[] {
  const groups = new Map<string, ModelOption[]>()
  const mains: ModelOption[] = []
  for (const m of all) {
    const ref = refOf(m, all)
    const name = m.name || m.id.slice(0, 8)
    const ep = m.epoch != null ? `epoch ${m.epoch}` : null
    // a checkpoint tagged "epoch" says it once: "brown-lstm · epoch 1", not "· epoch · epoch 1"
    const tag = m.tag && ep && ep.startsWith(m.tag) ? null : m.tag
    const detail = [tag, ep].filter(Boolean).join(' · ')
    if (ref === m.name) mains.push({ ref, label: `${name}${detail ? ` (${detail})` : ''}` })
    else {
      if (!groups.has(name)) groups.set(name, [])
      groups.get(name)!.push({ ref, label: `${name} · ${detail || ref}` })
    }
  }
  const out = [{ name: 'models', options: mains }]
  for (const [name, options] of groups) out.push({ name: `${name} checkpoints`, options })
  return out.filter((g) => g.options.length)
}

export async function loadModels(): Promise<void> {
  try {
    catalog.models = await api.models()
    catalog.error = null
  } catch (e) {
    catalog.error = toApiError(e)
  } finally {
    catalog.loaded = true
  }
}

const pending: Record<string, Promise<ModelInfo | undefined> | undefined> = {}

/**
 * ModelInfo of `ref` on the current split, fetched once (pass force to refresh, e.g. after a
 * recording finished or another split was chosen). An answer for a split no longer chosen is dropped.
 */
export function loadInfo(ref: string, force = false): Promise<ModelInfo | undefined> {
  if (!ref) return Promise.resolve(undefined)
  if (!force && pending[ref]) return pending[ref]!
  const split = currentSplit()
  const p = api
    .info(ref)
    .then((info) => {
      if (split !== currentSplit()) return catalog.info[ref]
      catalog.info[ref] = info
      catalog.infoError[ref] = undefined
      return info
    })
    .catch((e) => {
      if (split === currentSplit()) catalog.infoError[ref] = toApiError(e)
      pending[ref] = undefined
      return undefined
    })
  pending[ref] = p
  return p
}

/** Whether a view that needs `need` can show stream `s` (unknown facts, before a recording, allow it). */
export function streamAllowed(s: StreamInfo, need: StreamNeed): boolean {
  if (need === 'words') return s.word_stats !== false
  if (need === 'stored') return s.stored !== false
  return true
}

/**
 * The stream a view should use for `ref`: state.stream when the model has it and the view can show
 * it (`need`), else the model's default, else the first stream the view can show.
 */
export function streamFor(ref: string, wanted: string, need: StreamNeed = 'all'): string {
  const info = catalog.info[ref]
  if (!info) return wanted
  const ok = info.streams.filter((s) => streamAllowed(s, need))
  if (wanted && ok.some((s) => s.name === wanted)) return wanted
  if (!ok.length || ok.some((s) => s.name === info.default_stream)) return info.default_stream
  return ok[0].name
}
