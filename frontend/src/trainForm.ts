/**
 * Pure logic of the "Train…" form: the data sets it offers, a suggested model name, and the
 * validation the server does too (docs/api.md, POST /api/train), so mistakes show before sending.
 */
import type { Dataset, TrainRequest } from './api'

/** Model names the server accepts. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** Bounds of POST /api/train (perf.TRAIN_LIMITS). */
export const LIMITS = {
  layers: [1, 3],  // the model zoo's MAX_LAYERS
  hidden: [1, 2048],
  emb: [1, 2048],
  epochs: [1, 100],
  batch_size: [1, 1024],
  patience: [0, 100],
} as const
export const OTHER = '__other__'

export interface TrainFormValues {
  /** a data set name, or OTHER (then `other` is the name) */
  dataset: string
  other: string
  /** '' = from the data set */
  task: '' | 'lm' | 'classify'
  level: '' | 'word' | 'char'
  cell: 'rnn' | 'gru' | 'lstm'
  layers: number | string
  hidden: number | string
  emb: number | string
  epochs: number | string
  name: string
  batch_size: number | string
  /** '' = never stop early */
  patience: number | string
  dropout: number | string
}

export function defaultForm(): TrainFormValues {
  return {
    dataset: '', other: '', task: '', level: '', cell: 'lstm', layers: 1, hidden: 128, emb: 64, epochs: 5,
    name: '', batch_size: 32, patience: 3, dropout: 0.2,
  }
}

export interface DatasetOption {
  value: string
  label: string
  disabled: boolean
  hint: string
}

/**
 * Options of the data set <select>: the built-in data sets (those not fetched yet disabled, with
 * how to fetch them) and the data sets of the models already here that are not built in (own
 * data the server was given; the server says so if it was not).
 */
export function datasetOptions(builtin: Dataset[], modelData: string[]): { label: string; options: DatasetOption[] }[] {
  const known = new Set(builtin.map((d) => d.name))
  const own = [...new Set(modelData.filter((d) => d && !known.has(d)))].sort()
  const fetched = builtin.filter((d) => d.fetched)
  const missing = builtin.filter((d) => !d.fetched)
  const groups = [
    {
      label: 'data of the models here',
      options: own.map((d) => ({ value: d, label: d, disabled: false, hint: 'own data given to the server' })),
    },
    {
      label: 'built-in data sets',
      options: [
        ...fetched.map((d) => ({ value: d.name, label: `${d.name} — ${d.title}`, disabled: false, hint: `${d.level}-level ${d.task === 'classify' ? 'classification' : 'language model'}` })),
        ...missing.map((d) => ({ value: d.name, label: `${d.name} (not fetched)`, disabled: true, hint: `fetch it first: rnnvis data get ${d.name}` })),
      ],
    },
  ]
  return groups.filter((g) => g.options.length)
}

/** `{dataset}-{cell}-{hidden}`, made unique among `taken` with -2, -3, … */
export function suggestName(dataset: string, cell: string, hidden: number | string, taken: Iterable<string>): string {
  const set = new Set(taken)
  const base = `${dataset || 'model'}-${cell}-${hidden}`.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 56) || 'model'
  if (!set.has(base)) return base
  for (let i = 2; ; i++) if (!set.has(`${base}-${i}`)) return `${base}-${i}`
}

function intIn(v: number | string, lo: number, hi: number): number | null {
  const n = typeof v === 'number' ? v : v.trim() === '' ? NaN : Number(v)
  return Number.isInteger(n) && n >= lo && n <= hi ? n : null
}

/** Check the form; `body` is the POST /api/train body when `errors` is empty. */
export function validateTrain(f: TrainFormValues, taken: Iterable<string>): { body: TrainRequest | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {}
  const dataset = (f.dataset === OTHER ? f.other : f.dataset).trim()
  if (!dataset) errors.dataset = 'Choose a data set.'
  const num: Record<string, number> = {}
  for (const key of ['layers', 'hidden', 'emb', 'epochs', 'batch_size'] as const) {
    const [lo, hi] = LIMITS[key]
    const n = intIn(f[key], lo, hi)
    if (n === null) errors[key] = `A whole number in ${lo}–${hi}.`
    else num[key] = n
  }
  let patience: number | null = null
  if (String(f.patience).trim() !== '') {
    patience = intIn(f.patience, LIMITS.patience[0], LIMITS.patience[1])
    if (patience === null) errors.patience = 'A whole number in 0–100, or empty (never stop early).'
  }
  const dropout = Number(f.dropout)
  if (String(f.dropout).trim() === '' || !Number.isFinite(dropout) || dropout < 0 || dropout >= 1) errors.dropout = 'A number in [0, 1).'
  const name = f.name.trim()
  if (!NAME_RE.test(name) || name === '.' || name === '..')
    errors.name = "1–64 letters, digits, '.', '-' or '_', starting with a letter or digit."
  else if (new Set(taken).has(name)) errors.name = `A model named ${name} exists already: choose another name.`
  if (Object.keys(errors).length) return { body: null, errors }
  const body: TrainRequest = {
    dataset, name, cell: f.cell, layers: num.layers, hidden: num.hidden, emb: num.emb, epochs: num.epochs,
    batch_size: num.batch_size, patience, dropout,
  }
  if (f.task) body.task = f.task
  if (f.level) body.level = f.level
  return { body, errors }
}
