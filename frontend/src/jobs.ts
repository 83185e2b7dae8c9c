/**
 * The server's background jobs (recordings, trainings, slow analyses), polled while the app runs:
 * every second while one is queued or running, else every 5 s. `jobsStore.jobs` is newest first.
 * A train job that ends refreshes the model list (its model shows up there).
 */
import { reactive } from 'vue'
import { api, type ApiError, type Job } from './api'
import { loadInfo, loadModels } from './models'
import { toApiError } from './useApi'

export const FAST_MS = 1000
export const SLOW_MS = 5000

export const jobsStore = reactive({
  jobs: [] as Job[],
  loaded: false,
  error: null as ApiError | null,
})

/** UI flags shared by the header buttons, the Jobs panel and the train form. */
export const jobsUi = reactive({
  panelOpen: false,
  trainOpen: false,
  /** the job to highlight in the panel (e.g. the training just started) */
  focus: '' as string,
})

export const isActive = (j: Job): boolean => j.status === 'queued' || j.status === 'running'

export function activeCount(jobs: Job[]): number {
  return jobs.filter(isActive).length
}

/** Delay before the next poll: fast while anything is queued or running. */
export function pollDelay(jobs: Job[]): number {
  return jobs.some(isActive) ? FAST_MS : SLOW_MS
}

/** The running/queued train job of a model (by the job's meta: model name or run id), if any. */
export function trainJobOf(jobs: Job[], name: string | undefined, runId: number | null | undefined): Job | null {
  return (
    jobs.find(
      (j) =>
        j.kind === 'train' &&
        isActive(j) &&
        ((!!name && j.meta?.model === name) || (runId != null && j.meta?.run_id === runId)),
    ) ?? null
  )
}

/** Ids of train jobs that were active in `before` and are finished in `after`. */
export function finishedTrainJobs(before: Job[], after: Job[]): Job[] {
  return finishedJobs(before, after, 'train')
}

/** Jobs of `kind` that were queued/running in `before` and have ended in `after`. */
export function finishedJobs(before: Job[], after: Job[], kind: Job['kind']): Job[] {
  const was = new Map(before.map((j) => [j.id, j]))
  return after.filter((j) => j.kind === kind && !isActive(j) && !!was.get(j.id) && isActive(was.get(j.id)!))
}

/** A readable "about 2 min left". */
export function etaText(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return ''
  if (s < 60) return `about ${Math.max(1, Math.ceil(s))} s left`
  if (s < 3600) return `about ${Math.round(s / 60)} min left`
  return `about ${(s / 3600).toFixed(1)} h left`
}

let pending: Promise<void> | null = null

/** Fetch /api/jobs now (one request at a time); refresh the model list when a training ended. */
export function refreshJobs(): Promise<void> {
  if (pending) return pending
  pending = (async () => {
    try {
      const jobs = await api.jobs()
      const ended = jobsStore.loaded ? finishedTrainJobs(jobsStore.jobs, jobs) : []
      const recorded = jobsStore.loaded ? finishedJobs(jobsStore.jobs, jobs, 'record') : []
      jobsStore.jobs = jobs
      jobsStore.error = null
      if (ended.length) await loadModels()
      // a view recording that ended changes the model's facts in the panel (status, tokens)
      for (const j of recorded) if (typeof j.meta?.model === 'string') void loadInfo(j.meta.model, true)
    } catch (e) {
      jobsStore.error = toApiError(e)
    } finally {
      jobsStore.loaded = true
      pending = null
    }
  })()
  return pending
}

let timer: ReturnType<typeof setTimeout> | undefined
let polling = false

async function tick(): Promise<void> {
  await refreshJobs()
  schedule()
}

function schedule(ms = pollDelay(jobsStore.jobs)): void {
  if (!polling) return
  clearTimeout(timer)
  timer = setTimeout(() => void tick(), ms)
}

/** Start polling (idempotent). */
export function startJobPolling(): void {
  if (polling) return
  polling = true
  void tick()
}

export function stopJobPolling(): void {
  polling = false
  clearTimeout(timer)
}

/** Poll now (after a job was started or cancelled here), then at the usual pace. */
export function pokeJobs(): void {
  if (polling) schedule(0)
  else void refreshJobs()
}

/** Ask the server to cancel a job; the list refreshes at once. */
export async function cancelJob(id: string): Promise<Job> {
  const job = await api.cancelJob(id)
  const i = jobsStore.jobs.findIndex((j) => j.id === id)
  if (i >= 0) jobsStore.jobs.splice(i, 1, job)
  pokeJobs()
  return job
}

/** Add a job the app just started (POST /api/train) so it shows before the next poll. */
export function addJob(job: Job): void {
  if (!jobsStore.jobs.some((j) => j.id === job.id)) jobsStore.jobs.unshift(job)
  pokeJobs()
}
