/**
 * The colour scales of the app, in one place so every view agrees:
 * - signed values: diverging blue (negative) – white (0) – red (positive), symmetric around 0;
 * - non-negative values (probabilities, counts, |x|): sequential white → dark blue;
 * - clusters: a categorical palette indexed by cluster id;
 * - parts of speech and gate types: fixed categorical maps.
 */
import { interpolateRdBu, interpolateBlues, scaleDiverging, scaleSequential } from 'd3'

export const NEG = '#2166ac'
export const POS = '#b2182b'
export const NEUTRAL = '#f7f7f7'
export const MISSING = '#e0e0e0'

/** RdBu reversed so that negative = blue, positive = red. */
export const diverging = (t: number) => interpolateRdBu(1 - t)

/**
 * A colour function for signed values in [-maxAbs, maxAbs] (clamped; null -> MISSING).
 * `maxAbs <= 0` yields white for everything.
 */
export function divergingScale(maxAbs: number): (v: number | null | undefined) => string {
  const m = maxAbs > 0 && Number.isFinite(maxAbs) ? maxAbs : 1
  const s = scaleDiverging<string>([-m, 0, m], diverging).clamp(true)
  return (v) => (v === null || v === undefined || Number.isNaN(v) ? MISSING : maxAbs > 0 ? s(v) : NEUTRAL)
}

/** A colour function for values in [0, max] (clamped). */
export function sequentialScale(max: number, min = 0): (v: number | null | undefined) => string {
  const s = scaleSequential<string>([min, max > min ? max : min + 1], (t) => interpolateBlues(0.05 + 0.9 * t)).clamp(true)
  return (v) => (v === null || v === undefined || Number.isNaN(v) ? MISSING : s(v))
}

/** The largest |v| over a (nested) array of numbers, skipping null/NaN; robust via quantile q<1. */
export function maxAbs(values: ArrayLike<unknown>, q = 1): number {
  const flat: number[] = []
  const walk = (a: ArrayLike<unknown>) => {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]
      if (typeof v === 'number') {
        if (Number.isFinite(v)) flat.push(Math.abs(v))
      } else if (v && typeof v === 'object' && 'length' in (v as object)) walk(v as ArrayLike<unknown>)
    }
  }
  walk(values)
  if (!flat.length) return 0
  if (q >= 1) return flat.reduce((a, b) => (b > a ? b : a), 0)
  flat.sort((a, b) => a - b)
  return flat[Math.min(flat.length - 1, Math.floor(q * (flat.length - 1)))]
}

/** Text colour readable on top of a background colour given as #rrggbb or rgb(...). */
export function textOn(bg: string): string {
  let r = 255, g = 255, b = 255
  const hex = /^#([0-9a-f]{6})$/i.exec(bg)
  const rgb = /rgba?\((\d+),\s*(\d+),\s*(\d+)/i.exec(bg)
  if (hex) {
    const n = parseInt(hex[1], 16)
    r = (n >> 16) & 255
    g = (n >> 8) & 255
    b = n & 255
  } else if (rgb) {
    r = +rgb[1]
    g = +rgb[2]
    b = +rgb[3]
  }
  return 0.299 * r + 0.587 * g + 0.114 * b < 140 ? '#fff' : '#222'
}

/** Categorical palette for clusters (Tableau 10 + 10 lighter companions). */
export const CLUSTER_PALETTE = [
  '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
  '#a0cbe8', '#ffbe7d', '#8cd17d', '#ff9d9a', '#86bcb6', '#f1ce63', '#d4a6c8', '#fabfd2', '#d7b5a6', '#79706e',
]

export function clusterColor(id: number | null | undefined): string {
  if (id === null || id === undefined || id < 0) return '#999'
  return CLUSTER_PALETTE[id % CLUSTER_PALETTE.length]
}

/** Universal POS tags (and the Brown/Penn prefixes mapped onto them by `posGroup`). */
export const POS_COLORS: Record<string, string> = {
  NOUN: '#4e79a7',
  PROPN: '#2f5a85',
  VERB: '#e15759',
  AUX: '#c0392b',
  ADJ: '#59a14f',
  ADV: '#8cd17d',
  PRON: '#b07aa1',
  DET: '#9c755f',
  ADP: '#f28e2b',
  CONJ: '#edc948',
  CCONJ: '#edc948',
  SCONJ: '#d4b43a',
  NUM: '#76b7b2',
  PRT: '#ff9da7',
  PART: '#ff9da7',
  PUNCT: '#999999',
  X: '#bab0ac',
  OTHER: '#79706e',
}

/** Map a tag (universal, Penn or Brown) onto a POS_COLORS key. */
export function posGroup(tag: string | null | undefined): string {
  if (!tag) return 'OTHER'
  const t = tag.toUpperCase()
  if (t in POS_COLORS) return t
  if (t.startsWith('NNP') || t.startsWith('NP')) return 'PROPN'
  if (t.startsWith('NN') || t === 'NOUN') return 'NOUN'
  if (t.startsWith('VB') || t.startsWith('MD') || t.startsWith('BE') || t.startsWith('HV') || t.startsWith('DO')) return 'VERB'
  if (t.startsWith('JJ')) return 'ADJ'
  if (t.startsWith('RB') || t.startsWith('WRB')) return 'ADV'
  if (t.startsWith('PRP') || t.startsWith('PP') || t.startsWith('WP')) return 'PRON'
  if (t.startsWith('DT') || t.startsWith('AT') || t.startsWith('WDT') || t.startsWith('AB')) return 'DET'
  if (t === 'IN' || t === 'TO') return 'ADP'
  if (t === 'CC') return 'CONJ'
  if (t === 'CS') return 'SCONJ'
  if (t === 'CD' || t === 'OD') return 'NUM'
  if (t === 'RP') return 'PRT'
  if (/^[.,:;()'"`!?-]+$/.test(t)) return 'PUNCT'
  return 'OTHER'
}

/**
 * Cluster outlines of the memory view while its words are coloured by part of speech: one neutral
 * slate for every cluster (told apart by their numbers), so no cluster reads as a part of speech.
 */
export const CLUSTER_NEUTRAL = '#5b6b82'

/** The colour of cluster `id` in a view whose words may be coloured by part of speech. */
export function clusterColorBeside(id: number | null | undefined, posShown: boolean): string {
  return posShown ? CLUSTER_NEUTRAL : clusterColor(id)
}

export function posColor(tag: string | null | undefined): string {
  return POS_COLORS[posGroup(tag)]
}

/** Gate / stream kind colours (h, c and the gates of LSTM and GRU). */
export const GATE_COLORS: Record<string, string> = {
  h: '#4e79a7',
  c: '#9c755f',
  i: '#59a14f',
  f: '#e15759',
  g: '#b07aa1',
  o: '#f28e2b',
  r: '#76b7b2',
  z: '#edc948',
  n: '#ff9da7',
}

export function gateColor(gate: string | null | undefined): string {
  const key = (gate ?? '').replace(/^gate\./, '')
  return GATE_COLORS[key] ?? '#79706e'
}
