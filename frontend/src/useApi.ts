/**
 * `useLoad`: the one way a view loads data. Re-runs `fn` whenever `key()` changes, waits out a
 * 409 recording (progress in `job`), drops stale answers, and exposes {data, loading, error, job}
 * for ChartFrame.
 */
import { ref, shallowRef, watch, onBeforeUnmount, type Ref, type ShallowRef } from 'vue'
import { ApiError, currentSplit, withRecording, type Job } from './api'

export interface Loader<T> {
  data: ShallowRef<T | null>
  loading: Ref<boolean>
  error: ShallowRef<ApiError | null>
  job: ShallowRef<Job | null>
  reload: () => Promise<void>
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e
  return new ApiError(0, (e as Error)?.message ?? String(e), 'Reload the page; if it persists, see the browser console.')
}

/**
 * @param model  the model ref (a getter), used to start the recording on 409
 * @param key    a getter of everything the request depends on; null = do not load (data -> null)
 * @param fn     the request
 */
export function useLoad<T, K>(
  model: () => string,
  key: () => K | null,
  fn: (key: K) => Promise<T>,
  opts: { immediate?: boolean } = {},
): Loader<T> {
  const data = shallowRef<T | null>(null)
  const loading = ref(false)
  const error = shallowRef<ApiError | null>(null)
  const job = shallowRef<Job | null>(null)
  let seq = 0
  let alive = true
  onBeforeUnmount(() => {
    alive = false
    seq++
  })

  async function run(): Promise<void> {
    const k = key()
    const my = ++seq
    if (k === null || !model()) {
      data.value = null
      loading.value = false
      error.value = null
      job.value = null
      return
    }
    loading.value = true
    error.value = null
    try {
      const out = await withRecording(model(), () => fn(k), (j) => {
        if (my === seq) job.value = j
      }, { isCancelled: () => my !== seq || !alive })
      if (my !== seq) return
      data.value = out
    } catch (e) {
      if (my !== seq) return
      error.value = toApiError(e)
      data.value = null
    } finally {
      if (my === seq) {
        loading.value = false
        job.value = null
      }
    }
  }

  // the split is part of every request's key: choosing another one reloads every view
  watch(() => JSON.stringify([model(), currentSplit(), key()]), () => void run(), { immediate: opts.immediate ?? true })
  return { data, loading, error, job, reload: run }
}
