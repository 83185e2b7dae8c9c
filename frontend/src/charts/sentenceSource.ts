/** Which text a sentence-level view shows, and the /sentence request for it. */
import type { SentenceRequest } from '../api'

/** the server's default span of a document (tokens) when no stop is given */
export const WINDOW = 200

/**
 * typed text wins; else a window of a corpus document (state.doc, else `fallbackDoc`; null when
 * neither is known yet) from `offset`:
 * `window` tokens when given, else the server's default (up to 200, never past the end).
 */
export function sentenceRequest(
  s: { text: string; doc: number | null; k: number | null },
  stream: string,
  streams: string[],
  offset = 0,
  window?: number,
  fallbackDoc: number | null = null,
): SentenceRequest | null {
  const base: SentenceRequest = { stream, streams }
  if (s.k !== null) base.k = s.k
  if (s.text.trim()) return { ...base, text: s.text }
  const doc = s.doc ?? fallbackDoc
  if (doc === null) return null
  const out: SentenceRequest = { ...base, doc, start: offset }
  if (window !== undefined) out.stop = offset + window
  return out
}

/** Join tokens for display: words with spaces, characters as they are. */
export function joiner(level: 'word' | 'char' | undefined): string {
  return level === 'char' ? '' : ' '
}

import { computed, type ComputedRef } from 'vue'
import { api } from '../api'
import { useLoad } from '../useApi'

/**
 * The first document of the model's view recording (the default when none is chosen); null while
 * it loads, so that no request pairs the first document of one split with another split.
 */
export function useFirstDoc(model: () => string, needed: () => boolean): ComputedRef<number | null> {
  const first = useLoad(model, () => (needed() ? model() : null), () => api.documents(model(), { limit: 1 }))
  return computed(() => (first.loading.value ? null : first.data.value?.documents[0]?.doc ?? null))
}
