/**
 * The views of the app, in tab order. Each view component takes the props of `ViewProps`.
 * `paired: true` views are drawn twice side by side in compare mode (left = model, right = model_b);
 * `paired: false` views (compare) are drawn once and read both models.
 */
import { defineAsyncComponent, type Component } from 'vue'

export interface ViewProps {
  /** the model ref this instance shows */
  model: string
  /** 'a' = left / main model, 'b' = right / second model in compare mode */
  side: 'a' | 'b'
}

/**
 * Which state streams a view can show: 'all' (a window is read, or recomputed, for any stream),
 * 'words' (built on per-word statistics: h and c by default), 'stored' (scans every token: only
 * the streams stored per token, h by default).
 */
export type StreamNeed = 'all' | 'words' | 'stored'

export interface ViewDef {
  id: string
  title: string
  /** a one-line description shown as tab tooltip */
  hint: string
  component: Component
  paired: boolean
  streams: StreamNeed
}

export const VIEWS: ViewDef[] = [
  { id: 'summary', title: 'Summary', hint: 'Metrics, training curves, errors, gate saturation',
    component: defineAsyncComponent(() => import('./SummaryView.vue')), paired: true, streams: 'all' },
  { id: 'main', title: 'Memory', hint: 'Unit clusters (memory chips) linked to word clouds',
    component: defineAsyncComponent(() => import('./MainView.vue')), paired: true, streams: 'words' },
  { id: 'sentence', title: 'Sentence', hint: 'Sentence glyphs per unit cluster',
    component: defineAsyncComponent(() => import('./SentenceView.vue')), paired: true, streams: 'all' },
  { id: 'detail', title: 'Detail', hint: 'Text coloured by a unit; units × time heatmaps',
    component: defineAsyncComponent(() => import('./DetailView.vue')), paired: true, streams: 'all' },
  { id: 'radar', title: 'Radar', hint: 'Responses of chosen words on chosen units',
    component: defineAsyncComponent(() => import('./RadarView.vue')), paired: true, streams: 'words' },
  { id: 'projection', title: 'Projection', hint: 'Units and hidden-state trajectories in 2-D',
    component: defineAsyncComponent(() => import('./ProjectionView.vue')), paired: true, streams: 'words' },
  { id: 'discovery', title: 'Discovery', hint: 'Units that track annotations (quotes, depth, …)',
    component: defineAsyncComponent(() => import('./DiscoveryView.vue')), paired: true, streams: 'all' },
  { id: 'pattern', title: 'Pattern', hint: 'Select an on-pattern and match it across the corpus',
    component: defineAsyncComponent(() => import('./PatternView.vue')), paired: true, streams: 'stored' },
  { id: 'compare', title: 'Compare', hint: 'Two models side by side: loss, similarity, matching',
    component: defineAsyncComponent(() => import('./CompareView.vue')), paired: false, streams: 'stored' },
]

export function viewById(id: string): ViewDef {
  return VIEWS.find((v) => v.id === id) ?? VIEWS[1]
}

/** The streams view `id` can show (a projection of a trajectory reads any stream, of units needs words). */
export function streamNeed(id: string, what = 'units'): StreamNeed {
  if (id === 'projection' && what === 'trajectory') return 'all'
  return viewById(id).streams
}
